package dev.jtune.engine.memory;

/** The two ways a {@link CachingAllocator} gets device memory; tests run against both. */
enum Mode {
    PLAIN(CachingAllocator.Segments.PLAIN), EXPANDABLE(CachingAllocator.Segments.EXPANDABLE);

    final CachingAllocator.Segments segments;
    final boolean expandable;

    Mode(CachingAllocator.Segments segments) {
        this.segments = segments;
        this.expandable = segments == CachingAllocator.Segments.EXPANDABLE;
    }

    CachingAllocator.Config config() {
        return new CachingAllocator.Config(segments, 0);
    }

    CachingAllocator.Config config(long memoryLimit) {
        return new CachingAllocator.Config(segments, memoryLimit);
    }
}
