package dev.jtune.engine.memory;

/**
 * The size rules of the caching allocator, PyTorch's: they trade a little internal waste for reuse. Requests
 * round up to 512 bytes so that slightly different sizes share blocks; small requests (at most 1 MiB: biases,
 * norms, scalars) live in their own pool so that they never split the big segments that activations need.
 */
final class SizeClasses {
    static final long ROUNDING = 512;
    static final long SMALL_MAX = 1L << 20;
    /** Plain segments for the small pool: one 2 MiB malloc serves many small blocks. */
    static final long SMALL_SEGMENT = 2L << 20;
    /** Large requests below this share a {@link #MEDIUM_SEGMENT}, so that a few MiB do not each cost a malloc. */
    static final long MEDIUM_LIMIT = 10L << 20;
    static final long MEDIUM_SEGMENT = 20L << 20;
    /** Bigger requests get a segment of their own size rounded to this. */
    static final long LARGE_SEGMENT_ROUNDING = 2L << 20;

    private SizeClasses() {
    }

    /** {@code bytes} (> 0, not near Long.MAX_VALUE) rounded up to a multiple of 512. */
    static long round(long bytes) {
        return Math.ceilDiv(bytes, ROUNDING) * ROUNDING;
    }

    static boolean isSmall(long roundedSize) {
        return roundedSize <= SMALL_MAX;
    }

    /** The malloc size of a new plain segment for a block of {@code roundedSize}. */
    static long plainSegmentSize(long roundedSize) {
        if (isSmall(roundedSize)) {
            return SMALL_SEGMENT;
        }
        if (roundedSize < MEDIUM_LIMIT) {
            return MEDIUM_SEGMENT;
        }
        return Math.ceilDiv(roundedSize, LARGE_SEGMENT_ROUNDING) * LARGE_SEGMENT_ROUNDING;
    }

    /**
     * Whether a free chunk should be split, leaving {@code remainder} free. Large chunks keep remainders of at most
     * 1 MiB attached: such a sliver could only serve small requests, which the large pool never sees.
     */
    static boolean shouldSplit(boolean smallPool, long remainder) {
        return smallPool ? remainder >= ROUNDING : remainder > SMALL_MAX;
    }
}
