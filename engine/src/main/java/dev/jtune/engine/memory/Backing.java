package dev.jtune.engine.memory;

/**
 * Where the memory under the segments comes from, and when it goes back: the one thing that differs between
 * plain segments (one malloc each) and expandable segments (a reserved address range with pages mapped on demand).
 * Finding, splitting and coalescing blocks is the same for both and lives in {@link Pool}.
 */
sealed interface Backing permits PlainBacking, ExpandableBacking {

    /** The bytes a block of a {@code bytes} request spans: the request rounded to 512 ({@link SizeClasses#round}). */
    default long blockSize(long bytes) {
        return SizeClasses.round(bytes);
    }

    /**
     * Adds a segment to {@code pool} with a free chunk of at least {@code size} bytes and returns that chunk, or null
     * when the device or the memory limit refuses.
     */
    Chunk grow(Pool pool, long size);

    /**
     * Makes {@code [address, address + bytes)} of a free chunk usable by a kernel; returns false, having changed
     * nothing, when the device or the memory limit refuses.
     */
    boolean commit(long address, long bytes);

    /** Called after a freed block's chunk went back to {@code pool}, merged into {@code free}; caching backings keep it. */
    default void freed(Pool pool, Chunk free) {
    }

    /** Gives back to the device all memory that backs no live block; returns the bytes given back. */
    long releaseCached();

    /** Bytes taken from the device now. */
    long reserved();

    /** Device-level acquisitions so far (mallocs, or page maps). */
    long deviceAllocations();

    /** Device-level releases so far (frees, or page unmaps). */
    long deviceFrees();

    /** One line for error messages: how the reserved bytes are held. */
    String describe();

    /** Throws {@link IllegalStateException} when the device-side accounts disagree with the pools. */
    void verify();

    /** Gives every byte, handle and address range back to the device, live blocks or not. */
    void close();
}
