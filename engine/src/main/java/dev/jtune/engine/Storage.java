package dev.jtune.engine;

/**
 * A block of memory on one device that tensors view. Owned by exactly one {@link Scope}; freed when that scope
 * closes or when {@link #close()} is called first, which the tensor that allocated it does on its own
 * {@link Tensor#close()} (a view's close leaves the storage alone). Every tensor over a freed storage is closed
 * (any later use throws {@link ClosedException}).
 */
public abstract class Storage implements AutoCloseable {
    private final Device device;
    private final long bytes;
    private final MemoryCategory category;
    private final Placement placement;
    private boolean closed;
    private Scope owner;

    protected Storage(Device device, long bytes, MemoryCategory category) {
        this(device, bytes, category, Placement.DEVICE);
    }

    protected Storage(Device device, long bytes, MemoryCategory category, Placement placement) {
        this.device = device;
        this.bytes = bytes;
        this.category = category;
        this.placement = placement;
    }

    public final Device device() {
        return device;
    }

    public final long bytes() {
        return bytes;
    }

    public final MemoryCategory category() {
        return category;
    }

    /** Device memory, or host memory the device maps ({@link Placement#HOST_MAPPED}). */
    public final Placement placement() {
        return placement;
    }

    /**
     * The first byte: a device pointer for cuda (for host-mapped memory, the device's address of it), a native
     * address for cpu, a simulated address for meta.
     */
    public abstract long address();

    public final boolean isClosed() {
        return closed;
    }

    /** Throws naming {@code what} when this storage was already freed. */
    public final void checkOpen(String what) {
        if (closed) {
            throw new ClosedException(what + ": the tensor's storage (" + bytes + " bytes on " + device
                    + ") was already freed (its scope closed, or it was closed explicitly)");
        }
    }

    /** The scope that owns this storage (null once freed). */
    public final Scope owner() {
        return owner;
    }

    final void owner(Scope scope) {
        this.owner = scope;
    }

    @Override
    public final void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (owner != null) {
            owner.forget(this);
            owner = null;
        }
        release();
    }

    /** Returns the memory to its backend; called once. */
    protected abstract void release();
}
