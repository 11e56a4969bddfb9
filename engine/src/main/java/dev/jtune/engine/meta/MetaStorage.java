package dev.jtune.engine.meta;

import dev.jtune.engine.Device;
import dev.jtune.engine.Storage;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.memory.CachingAllocator;

/** Storage on the meta device: a block of the simulated allocator, with an address and no bytes behind it. */
public final class MetaStorage extends Storage {
    private final CachingAllocator allocator;
    private final Block block;

    MetaStorage(CachingAllocator allocator, Block block) {
        super(Device.META, block.requested(), block.category());
        this.allocator = allocator;
        this.block = block;
    }

    /** The simulated address, where the CUDA allocator would have placed it; never dereferenced. */
    @Override
    public long address() {
        return block.address();
    }

    @Override
    protected void release() {
        allocator.free(block);
    }
}
