package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.OutOfDeviceMemoryException;

import java.util.List;
import java.util.Objects;

/**
 * A caching allocator for one device, after PyTorch's CUDA caching allocator. Freed blocks stay with the allocator
 * and serve later requests, so that a training step, which allocates and frees the same sizes every time, stops
 * talking to the driver after the first step.
 *
 * <ul>
 *   <li>Sizes round up to 512 bytes. Requests of at most 1 MiB use the small pool, larger ones the large pool; the
 *       two never share segments, so small long-lived tensors cannot pin down big segments.</li>
 *   <li>A request takes the best fit (smallest free chunk that is big enough) and splits it when the rest is worth
 *       keeping ({@link SizeClasses}); a freed block merges with free neighbours in its segment.</li>
 *   <li>Plain segments ({@link PlainBacking}) are one malloc each: 2 MiB for the small pool, 20 MiB for large
 *       requests under 10 MiB, otherwise the request rounded to 2 MiB. Expandable segments
 *       ({@link ExpandableBacking}) are one huge virtual range per pool with pages mapped under live blocks.</li>
 *   <li>Uncached ({@link UncachedBacking}, {@value Config#ENVIRONMENT}=uncached): no cache at all, one malloc of
 *       exactly the request per block, freed with it, so that memory checkers see every tensor's bounds.</li>
 *   <li>When the device or the memory limit refuses, the allocator gives back every cached byte that backs no live
 *       block and tries once more; then it throws {@link OutOfDeviceMemoryException}.</li>
 * </ul>
 *
 * <p>Streams: there is one compute stream per device, and every kernel runs on it in the order it was queued. A
 * block freed by the host can therefore be handed out again at once, even while kernels that read it are still
 * queued: the next user's kernels are queued after them. Allocating for another stream would need per-stream free
 * lists or events recorded at free, as PyTorch does.
 *
 * <p>Thread-safe: every public method holds one lock; the work under it is bookkeeping plus an occasional driver call.
 */
public final class CachingAllocator implements AutoCloseable {
    /** Requests above this are refused outright; it keeps size arithmetic far from overflow. */
    private static final long MAX_REQUEST = 1L << 60;

    /** Where blocks get their memory (see the class comment). */
    public enum Segments {
        /** One malloc per segment, blocks carved from it and cached. */
        PLAIN,
        /** One reserved virtual range per pool, pages mapped under live blocks; needs virtual memory support. */
        EXPANDABLE,
        /** No caching: each block is its own malloc of exactly its bytes, freed with it (for memory checkers). */
        UNCACHED
    }

    /**
     * @param segments    where blocks get their memory
     * @param memoryLimit most bytes this allocator may reserve; 0 means the device's capacity
     */
    public record Config(Segments segments, long memoryLimit) {
        /** System property that selects the uncached mode ({@value}=uncached); it wins over {@link #ENVIRONMENT}. */
        public static final String PROPERTY = "jtune.allocator";
        /** Environment variable that selects the uncached mode ({@value}=uncached). */
        public static final String ENVIRONMENT = "JTUNE_ALLOCATOR";

        public Config {
            java.util.Objects.requireNonNull(segments, "segments");
            if (memoryLimit < 0) {
                throw new IllegalArgumentException("memoryLimit must be 0 (the device's capacity) or positive, got " + memoryLimit);
            }
        }

        public static Config plain() {
            return new Config(Segments.PLAIN, 0);
        }

        public static Config expandable() {
            return new Config(Segments.EXPANDABLE, 0);
        }

        public static Config uncached() {
            return new Config(Segments.UNCACHED, 0);
        }

        /**
         * The configuration a backend asks for ({@code segments}, {@code memoryLimit}), unless {@value #PROPERTY} or
         * {@value #ENVIRONMENT} asks for the uncached mode, which then wins (and says so on stderr, since it is slow).
         */
        public static Config fromSettings(Segments segments, long memoryLimit) {
            Config config = of(segments, memoryLimit, System.getProperty(PROPERTY), System.getenv(ENVIRONMENT));
            if (config.segments() == Segments.UNCACHED) {
                System.err.println("jtune: uncached device allocator (" + PROPERTY + " / " + ENVIRONMENT + "=uncached): "
                        + "every block is its own allocation, freed at once; for memory checkers, not for speed");
            }
            return config;
        }

        /**
         * {@link #fromSettings} with the setting's two sources given: the property, else the environment variable;
         * "caching", blank or absent keep the asked-for segments, "uncached" selects {@link Segments#UNCACHED}.
         */
        static Config of(Segments segments, long memoryLimit, String property, String environment) {
            String source = property != null && !property.isBlank() ? PROPERTY : ENVIRONMENT;
            String value = property != null && !property.isBlank() ? property : environment;
            String setting = value == null ? "" : value.strip().toLowerCase(java.util.Locale.ROOT);
            return switch (setting) {
                case "", "caching" -> new Config(segments, memoryLimit);
                case "uncached" -> new Config(Segments.UNCACHED, memoryLimit);
                default -> throw new IllegalArgumentException(source + " must be \"caching\" or \"uncached\", got \"" + value + "\"");
            };
        }

        /** Whether blocks come from expandable segments. */
        public boolean expandableSegments() {
            return segments == Segments.EXPANDABLE;
        }

        public Config withMemoryLimit(long bytes) {
            return new Config(segments, bytes);
        }
    }

    private final Object lock = new Object();
    private final DeviceMemory device;
    private final Config config;
    private final long limit;
    private final Pool small = new Pool("small", true);
    private final Pool large = new Pool("large", false);
    private final Backing backing;
    private final AllocatorStats stats = new AllocatorStats();
    private boolean closed;

    public CachingAllocator(DeviceMemory device, Config config) {
        this.device = Objects.requireNonNull(device, "device");
        this.config = Objects.requireNonNull(config, "config");
        this.limit = config.memoryLimit() > 0 ? config.memoryLimit() : device.capacity();
        List<Pool> pools = List.of(small, large);
        this.backing = switch (config.segments()) {
            case PLAIN -> new PlainBacking(device, limit, pools);
            case EXPANDABLE -> new ExpandableBacking(device, limit, pools);
            case UNCACHED -> new UncachedBacking(device, limit, pools);
        };
    }

    public Config config() {
        return config;
    }

    /** The most bytes this allocator will reserve: the memory limit, or the device's capacity when there is none. */
    public long limit() {
        return limit;
    }

    /**
     * Allocates at least {@code bytes} (> 0) for {@code category}.
     *
     * @throws OutOfDeviceMemoryException when the request does not fit even after releasing the cache
     */
    public Block allocate(long bytes, MemoryCategory category) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("allocate: bytes must be positive, got " + bytes);
        }
        Objects.requireNonNull(category, "category");
        synchronized (lock) {
            checkOpen("allocate");
            if (bytes > Math.min(limit, MAX_REQUEST)) {
                throw outOfMemory(bytes, bytes, bytes <= SizeClasses.SMALL_MAX ? small : large, category);
            }
            long size = backing.blockSize(bytes);
            Pool pool = SizeClasses.isSmall(size) ? small : large;
            Chunk chunk = tryAllocate(pool, size);
            if (chunk == null) {
                backing.releaseCached();
                chunk = tryAllocate(pool, size);
            }
            if (chunk == null) {
                throw outOfMemory(bytes, size, pool, category);
            }
            Block block = new Block(this, chunk, bytes, category);
            chunk.owner = block;
            stats.allocated(chunk.size, category, backing.reserved());
            return block;
        }
    }

    /** Best fit from the pool, else from a new segment; the chunk is committed before it leaves the free set. */
    private Chunk tryAllocate(Pool pool, long size) {
        Chunk chunk = pool.bestFit(size);
        if (chunk == null) {
            chunk = backing.grow(pool, size);
            if (chunk == null) {
                return null;
            }
        }
        if (!backing.commit(chunk.address, pool.spanFor(chunk, size))) {
            return null;
        }
        return pool.take(chunk, size);
    }

    /**
     * Returns a block to the cache (the device keeps the memory until {@link #emptyCache()} or memory pressure).
     * Freeing a block twice throws {@link IllegalStateException}; freeing one that {@link #close()} already
     * released does nothing, so that scopes may close after the device did.
     */
    public void free(Block block) {
        Objects.requireNonNull(block, "block");
        synchronized (lock) {
            if (block.allocator() != this) {
                throw new IllegalArgumentException("free of " + block + ", which another allocator handed out");
            }
            switch (block.state()) {
                case FREED -> throw new IllegalStateException("double free of " + block);
                case RELEASED_BY_CLOSE -> {
                    return;
                }
                case LIVE -> {
                }
            }
            Chunk chunk = block.chunk();
            block.state(Block.State.FREED);
            chunk.owner = null;
            stats.freed(block.size(), block.category());
            Pool pool = poolOf(chunk);
            backing.freed(pool, pool.give(chunk));
        }
    }

    /**
     * Sizes of the large pool's free chunks that a request is carved from before fresh memory, largest first: every
     * cached one, except with expandable segments each range's free end (which is the fresh memory). A request taking
     * such a leftover whole (its remainder under 1 MiB: {@link SizeClasses#shouldSplit}) spans more than it would from
     * fresh memory, so a footprint compared with a fresh allocator's holds blocks of these sizes first (each takes its
     * chunk, the best fit) and frees them after: the GPU test comparing the meta device's allocations with the GPU's.
     * Chunks of at most 1 MiB are left out: no large request fits them, and a small request would not reach them.
     */
    public List<Long> leftoverChunkSizes() {
        synchronized (lock) {
            boolean expandable = config.segments() == Segments.EXPANDABLE;
            List<Long> sizes = new java.util.ArrayList<>();
            for (Chunk c : large.freeChunks()) {
                if (c.size > SizeClasses.SMALL_MAX && !(expandable && c.next == null)) {
                    sizes.add(c.size);
                }
            }
            sizes.sort(java.util.Comparator.reverseOrder());
            return sizes;
        }
    }

    /** Gives every cached byte that backs no live block back to the device. */
    public void emptyCache() {
        synchronized (lock) {
            if (!closed) {
                backing.releaseCached();
            }
        }
    }

    public MemoryStats stats() {
        synchronized (lock) {
            return snapshot();
        }
    }

    /** Restarts the peaks (overall and per category) from the current values. */
    public void resetPeaks() {
        synchronized (lock) {
            stats.resetPeaks(backing.reserved());
        }
    }

    /** Gives every byte, physical handle and address range back to the device; blocks still live become invalid. */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            for (Pool pool : List.of(small, large)) {
                for (Segment s : pool.segments()) {
                    for (Chunk c = s.first; c != null; c = c.next) {
                        if (!c.isFree()) {
                            c.owner.state(Block.State.RELEASED_BY_CLOSE);
                            stats.released(c.size, c.owner.category());
                        }
                    }
                }
            }
            backing.close();
        }
    }

    /**
     * Checks every internal invariant (chunks tile their segments, no two free neighbours, the free sets and the
     * statistics agree with the chunks, pages lie under live blocks); throws {@link IllegalStateException}. For tests.
     */
    void verify() {
        synchronized (lock) {
            long live = small.verify() + large.verify();
            MemoryStats s = snapshot();
            long byCategory = 0;
            for (MemoryCategory c : MemoryCategory.values()) {
                byCategory += s.allocated(c);
            }
            if (live != s.allocated() || byCategory != s.allocated() || s.reserved() < s.allocated()) {
                throw new IllegalStateException("allocator invariant broken: live chunks " + live + ", stats " + s
                        + ", sum by category " + byCategory);
            }
            backing.verify();
        }
    }

    private MemoryStats snapshot() {
        return stats.snapshot(backing.reserved(), backing.deviceAllocations(), backing.deviceFrees());
    }

    private Pool poolOf(Chunk chunk) {
        return SizeClasses.isSmall(chunk.size) ? small : large;
    }

    private void checkOpen(String what) {
        if (closed) {
            throw new IllegalStateException(what + ": the allocator is closed");
        }
    }

    private OutOfDeviceMemoryException outOfMemory(long requested, long rounded, Pool pool, MemoryCategory category) {
        return OutOfMemoryMessage.exception(new OutOfMemoryMessage.Facts(requested, rounded, pool.name(), category,
                device.capacity(), device.free(), limit, config.memoryLimit() > 0, config.expandableSegments(),
                snapshot(), backing.describe()));
    }
}
