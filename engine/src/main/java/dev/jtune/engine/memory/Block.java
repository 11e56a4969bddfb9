package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;

/**
 * One allocation handed out by a {@link CachingAllocator}: a device address and a size. Each allocation gets a new
 * handle, even when it reuses the address of an earlier one, so that freeing a stale handle is always detected as
 * a double free instead of silently freeing someone else's memory.
 */
public final class Block {
    enum State { LIVE, FREED, RELEASED_BY_CLOSE }

    private final CachingAllocator allocator;
    private final Chunk chunk;
    private final long size;
    private final long requested;
    private final MemoryCategory category;
    private volatile State state = State.LIVE; // written under the allocator's lock, read by isLive() from anywhere

    Block(CachingAllocator allocator, Chunk chunk, long requested, MemoryCategory category) {
        this.allocator = allocator;
        this.chunk = chunk;
        this.size = chunk.size;
        this.requested = requested;
        this.category = category;
    }

    /** The first byte on the device. */
    public long address() {
        return chunk.address;
    }

    /**
     * Bytes this block spans: the request rounded up to 512, or more when the rest of a chunk was not worth splitting;
     * exactly the request in the uncached mode.
     */
    public long size() {
        return size;
    }

    /** Bytes the caller asked for. */
    public long requested() {
        return requested;
    }

    public MemoryCategory category() {
        return category;
    }

    /** Whether the memory still belongs to the holder of this handle. */
    public boolean isLive() {
        return state == State.LIVE;
    }

    CachingAllocator allocator() {
        return allocator;
    }

    Chunk chunk() {
        return chunk;
    }

    State state() {
        return state;
    }

    void state(State state) {
        this.state = state;
    }

    @Override
    public String toString() {
        return "Block[0x" + Long.toHexString(chunk.address) + ", " + size + " bytes (" + requested + " asked), "
                + category + ", " + state.name().toLowerCase(java.util.Locale.ROOT) + "]";
    }
}
