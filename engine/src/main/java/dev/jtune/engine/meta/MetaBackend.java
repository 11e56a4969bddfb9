package dev.jtune.engine.meta;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Storage;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.backend.BinaryOp;
import dev.jtune.engine.backend.Distribution;
import dev.jtune.engine.backend.ReduceOp;
import dev.jtune.engine.memory.CachingAllocator;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.memory.SimulatedDeviceMemory;

import java.lang.foreign.MemorySegment;

/**
 * The meta device: tensors with shapes and allocation sizes but no data, so that the training-step code itself,
 * run on meta, predicts the memory it needs on a GPU. Allocation goes through the same {@link CachingAllocator}
 * as on CUDA, in expandable mode, over a {@link SimulatedDeviceMemory} of 1 PiB with the GPU's 2 MiB pages: its
 * statistics (allocated, reserved, peaks per category) are what the CUDA allocator would report for the same
 * sequence of allocations, never limited by this machine. Ops have been validated by {@code Ops} before they get
 * here, so compute methods have nothing left to do.
 *
 * <p>For a fresh plan: close the scopes of the previous one, then {@link #reset()}.
 */
public final class MetaBackend implements Backend {
    /** Practically unlimited: a plan must never fail for lack of simulated memory. */
    static final long CAPACITY = 1L << 50;
    private static final MetaBackend INSTANCE = new MetaBackend();

    private final CachingAllocator allocator =
            new CachingAllocator(new SimulatedDeviceMemory(CAPACITY), CachingAllocator.Config.expandable());

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
        return "meta (shapes and allocation sizes only, no data; simulated expandable-segment allocator)";
    }

    @Override
    public Storage allocate(long bytes, MemoryCategory category) {
        return new MetaStorage(allocator, allocator.allocate(bytes, category));
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
    public void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
    }

    @Override
    public void scale(Tensor a, double factor, Tensor out) {
    }

    @Override
    public void reduce(ReduceOp op, Tensor a, int axis, Tensor out) {
    }

    @Override
    public void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out) {
    }

    @Override
    public void synchronize() {
    }

    @Override
    public MemoryStats memoryStats() {
        return allocator.stats();
    }

    @Override
    public void emptyCache() {
        allocator.emptyCache();
    }

    /** Restarts the peaks from the current values, to measure the next phase. */
    public void resetPeaks() {
        allocator.resetPeaks();
    }

    /**
     * Prepares a fresh plan: returns the cache (as if the GPU had just started) and restarts the peaks. Tensors
     * still live stay counted, so close the previous plan's scopes first.
     */
    public void reset() {
        allocator.emptyCache();
        allocator.resetPeaks();
    }
}
