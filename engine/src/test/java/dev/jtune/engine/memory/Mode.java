package dev.jtune.engine.memory;

/** The two ways a {@link CachingAllocator} gets device memory; tests run against both. */
enum Mode {
    PLAIN(false), EXPANDABLE(true);

    final boolean expandable;

    Mode(boolean expandable) {
        this.expandable = expandable;
    }

    CachingAllocator.Config config() {
        return new CachingAllocator.Config(expandable, 0);
    }

    CachingAllocator.Config config(long memoryLimit) {
        return new CachingAllocator.Config(expandable, memoryLimit);
    }
}
