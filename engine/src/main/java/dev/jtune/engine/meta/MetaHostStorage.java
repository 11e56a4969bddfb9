package dev.jtune.engine.meta;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Storage;
import dev.jtune.engine.backend.HostMappedCounter;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Host-mapped storage on the meta device: no bytes, counted in the host figure and not by the simulated device
 * allocator, so a plan's device peak leaves it out as the GPU's does.
 */
final class MetaHostStorage extends Storage {
    /** Simulated host addresses, far from the simulated device range; never dereferenced. */
    private static final AtomicLong NEXT = new AtomicLong(1L << 56);

    private final HostMappedCounter counter;
    private final long address;

    MetaHostStorage(HostMappedCounter counter, long bytes, MemoryCategory category) {
        super(Device.META, bytes, category, Placement.HOST_MAPPED);
        this.counter = counter;
        this.address = NEXT.getAndAdd((bytes + 511) / 512 * 512);
        counter.allocated(bytes, category);
    }

    @Override
    public long address() {
        return address;
    }

    @Override
    protected void release() {
        counter.freed(bytes(), category());
    }
}
