package dev.jtune.engine.meta;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Storage;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.BinaryOp;
import dev.jtune.engine.backend.Distribution;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.backend.HostMappedCounter;
import dev.jtune.engine.ReduceOp;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.memory.CachingAllocator;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.memory.SimulatedDeviceMemory;

import java.lang.foreign.MemorySegment;

/**
 * The meta device: tensors with shapes and allocation sizes but no data, so that the training-step code itself,
 * run on meta, predicts the memory it needs on a GPU. Allocation goes through the same {@link CachingAllocator}
 * as on CUDA, in expandable mode, over a {@link SimulatedDeviceMemory} of 1 PiB with the GPU's 2 MiB pages: its
 * statistics (allocated, reserved, peaks per category) are what the CUDA allocator would report for the same
 * sequence of allocations, never limited by this machine. Ops have been validated and their outputs allocated by
 * the op's shared code before they get here, so the primitives have nothing left to do; a fused op's meta rule
 * ({@link FusedOp#meta}) allocates the workspace its cuda launcher would, through the launcher's own size function,
 * and answers the cuda device's path choices (fused attention), so the sequence of allocations is the GPU's. Not
 * modelled: per-GPU resident buffers allocated once (cuBLASLt's 32 MiB workspace at the first matmul, the NF4
 * lookup tables at the first dequantization), which a plan adds once.
 *
 * <p>For a fresh plan: close the scopes of the previous one, then {@link #reset()}.
 */
public final class MetaBackend implements Backend {
    /** Practically unlimited: a plan must never fail for lack of simulated memory. */
    static final long CAPACITY = 1L << 50;
    private static final MetaBackend INSTANCE = new MetaBackend();

    /** H100 SXM and H200. */
    public static final int DEFAULT_MULTIPROCESSORS = 132;

    /**
     * Expandable like the GPU's, and uncached where {@code JTUNE_ALLOCATOR=uncached} makes the GPU's uncached too (a
     * memory checker's run): either way the sizes this process's GPU would allocate.
     */
    private final CachingAllocator allocator = new CachingAllocator(new SimulatedDeviceMemory(CAPACITY),
            CachingAllocator.Config.fromSettings(CachingAllocator.Segments.EXPANDABLE, 0));
    private final HostMappedCounter hostMapped = new HostMappedCounter();
    private volatile int multiprocessors = DEFAULT_MULTIPROCESSORS;

    private MetaBackend() {
    }

    public static MetaBackend instance() {
        return INSTANCE;
    }

    @Override
    public Device device() {
        return Device.META;
    }

    @Override
    public String description() {
        return "meta (shapes and allocation sizes only, no data; simulated " + allocator.config().segments().name().toLowerCase(java.util.Locale.ROOT) + " allocator)";
    }

    /**
     * Storage on the meta device standing for {@code bytes} held elsewhere (a weight sharded over the ranks): no
     * allocator block, nothing counted, address 0; a tensor over it has a shape and a dtype and nothing to read.
     */
    public static Storage placeholder(long bytes, MemoryCategory category) {
        return new Storage(Device.META, bytes, category) {
            @Override
            public long address() {
                return 0;
            }

            @Override
            protected void release() {
            }
        };
    }

    @Override
    public Storage allocate(long bytes, MemoryCategory category) {
        return new MetaStorage(allocator, allocator.allocate(bytes, category));
    }

    /** Simulated like device memory, but counted in the host figure, as the GPU counts its host-mapped memory. */
    @Override
    public Storage allocateHostMapped(long bytes, MemoryCategory category) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("allocateHostMapped: " + bytes + " bytes (must be > 0)");
        }
        return new MetaHostStorage(hostMapped, bytes, category);
    }

    @Override
    public void copyFromHost(MemorySegment src, Tensor dst) {
        // the data is dropped: meta tensors hold none
    }

    @Override
    public void copyToHost(Tensor src, MemorySegment dst) {
        throw new UnsupportedOpException("meta tensors hold no data: cannot copy " + src.describe()
                + " to the host; run on cpu or cuda to read values");
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
    }

    @Override
    public void fill(Tensor dst, double value) {
    }

    @Override
    public void fillRandom(Tensor dst, Distribution distribution, long seed, double p0, double p1) {
    }

    @Override
    public void accumulate(Tensor src, Tensor dst) {
    }

    @Override
    public void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
    }

    @Override
    public void scale(Tensor a, double factor, Tensor out) {
    }

    @Override
    public void reduce(ReduceOp op, Tensor a, int axis, Tensor out) {
    }

    @Override
    public void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, double alpha, boolean accumulate) {
    }

    /** A fused op's meta rule: no data to compute, only the workspace its cuda launcher would allocate. */
    @Override
    public <K> K kernels(FusedOp<K> op) {
        return op.meta();
    }

    /**
     * Allocates {@code bytes} of WORKSPACE as a cuda launcher allocates its scratch (straight from the allocator, no
     * scope), freed on close; nothing when {@code bytes} is 0. Meta rules use it with the launcher's size function.
     */
    public Workspace workspace(long bytes) {
        return new Workspace(bytes > 0 ? allocator.allocate(bytes, MemoryCategory.WORKSPACE) : null);
    }

    /** A simulated workspace block, freed by {@link #close()}. */
    public final class Workspace implements AutoCloseable {
        private Block block;

        private Workspace(Block block) {
            this.block = block;
        }

        @Override
        public void close() {
            if (block != null) {
                allocator.free(block);
                block = null;
            }
        }
    }

    /** Streaming multiprocessors of the modelled GPU, which some launchers' workspace sizes depend on. */
    public int multiprocessors() {
        return multiprocessors;
    }

    /** Models a GPU with {@code count} streaming multiprocessors (default {@value #DEFAULT_MULTIPROCESSORS}). */
    public void multiprocessors(int count) {
        if (count <= 0) {
            throw new IllegalArgumentException("multiprocessors must be positive, got " + count);
        }
        this.multiprocessors = count;
    }

    @Override
    public void synchronize() {
    }

    @Override
    public MemoryStats memoryStats() {
        return allocator.stats().withHost(hostMapped.snapshot());
    }

    @Override
    public void emptyCache() {
        allocator.emptyCache();
    }

    /** Restarts the peaks from the current values, to measure the next phase. */
    @Override
    public void resetPeaks() {
        allocator.resetPeaks();
        hostMapped.resetPeak();
    }

    /**
     * Prepares a fresh plan: returns the cache (as if the GPU had just started) and restarts the peaks. Tensors
     * still live stay counted, so close the previous plan's scopes first.
     */
    public void reset() {
        allocator.emptyCache();
        allocator.resetPeaks();
        hostMapped.resetPeak();
    }
}
