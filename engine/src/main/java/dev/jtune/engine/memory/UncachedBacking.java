package dev.jtune.engine.memory;

/**
 * No caching at all, for memory checkers (compute-sanitizer): every block is one {@code malloc} of exactly the bytes
 * asked for, given back with {@code free} as soon as the block is freed, like PyTorch's
 * {@code PYTORCH_NO_CUDA_MEMORY_CACHING=1}. A pooled or rounded block would let a kernel write past a tensor's end
 * into memory the checker counts as allocated; here the first byte past the end belongs to no allocation. Slow (a
 * driver call and a device synchronisation per free), so only for checking.
 */
final class UncachedBacking extends PlainBacking {

    UncachedBacking(DeviceMemory device, long limit, java.util.List<Pool> pools) {
        super(device, limit, pools);
    }

    /** The request itself: no rounding, so the allocation ends where the tensor ends. */
    @Override
    public long blockSize(long bytes) {
        return bytes;
    }

    /** A segment holds exactly one block. */
    @Override
    long segmentSize(long size) {
        return size;
    }

    /**
     * The freed block's segment goes back to the device at once. Kernels queued before the free may still use it
     * (the caching modes rely on stream order instead), so the device finishes its work first.
     */
    @Override
    public void freed(Pool pool, Chunk free) {
        device.synchronize();
        pool.removeSegment(free.segment);
        freeSegment(free.segment);
    }

    @Override
    public String describe() {
        int blocks = 0;
        for (Pool pool : pools) {
            blocks += pool.segments().size();
        }
        return blocks + " uncached blocks, each its own allocation";
    }
}
