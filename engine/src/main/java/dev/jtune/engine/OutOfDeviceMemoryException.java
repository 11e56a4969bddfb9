package dev.jtune.engine;

/**
 * An allocation that does not fit, even after the allocator released its cache. Carries the figures a user needs
 * to act: what was asked, what the device had free, and what this process holds.
 */
public final class OutOfDeviceMemoryException extends EngineException {
    private final long requested;
    private final long free;

    public OutOfDeviceMemoryException(String message, long requested, long free) {
        this(message, requested, free, null);
    }

    /** @param hint what the user can do about it (the message may repeat it), or null */
    public OutOfDeviceMemoryException(String message, long requested, long free, String hint) {
        super(message, null, hint);
        this.requested = requested;
        this.free = free;
    }

    public long requested() {
        return requested;
    }

    public long free() {
        return free;
    }
}
