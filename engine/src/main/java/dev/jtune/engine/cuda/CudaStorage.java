package dev.jtune.engine.cuda;

import dev.jtune.engine.Device;
import dev.jtune.engine.Storage;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.memory.CachingAllocator;

/** Device memory from the caching allocator; freeing returns the block to the allocator's cache. */
final class CudaStorage extends Storage {
    private final CachingAllocator allocator;
    private final Block block;

    CudaStorage(Device device, CachingAllocator allocator, Block block) {
        super(device, block.requested(), block.category());
        this.allocator = allocator;
        this.block = block;
    }

    @Override
    public long address() {
        return block.address();
    }

    @Override
    protected void release() {
        allocator.free(block);
    }
}
