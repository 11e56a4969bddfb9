package dev.jtune.engine.memory;

import java.util.ArrayList;
import java.util.List;
import java.util.NavigableMap;
import java.util.TreeMap;

/**
 * Expandable segments, the mechanism behind PyTorch's {@code expandable_segments:True}. Each pool reserves one huge
 * virtual address range (twice the device, so it practically never runs out) and blocks tile it; physical pages of
 * {@link DeviceMemory#granularity()} bytes are mapped under a block when it is handed out, and a page goes back
 * as soon as no live block overlaps it (when the cache is released). Physical memory therefore follows the live
 * blocks: free space can be split into any number of pieces without costing more than a page at each end of a
 * live block, and an allocation fails only when live blocks really leave too little room.
 */
final class ExpandableBacking implements Backing {
    private final DeviceMemory device;
    private final long limit;
    private final List<Pool> pools;
    private final long granularity;
    private final long rangeSize;
    /** Mapped pages: page address to its physical handle. Sorted, so that the pages under a range are a sub-map. */
    private final NavigableMap<Long, Long> pages = new TreeMap<>();
    private long maps;
    private long unmaps;

    ExpandableBacking(DeviceMemory device, long limit, List<Pool> pools) {
        if (!device.supportsVirtualMemory()) {
            throw new IllegalArgumentException("expandable segments need virtual memory management, which this device lacks: use plain segments");
        }
        this.device = device;
        this.limit = limit;
        this.pools = pools;
        this.granularity = device.granularity();
        this.rangeSize = alignUp(Math.multiplyExact(device.capacity(), 2L));
    }

    /**
     * Reserves a pool's address range on its first allocation, or another one should a range ever be too
     * fragmented to hold a request (which needs live blocks spread over twice the device's size).
     */
    @Override
    public Chunk grow(Pool pool, long size) {
        long bytes = Math.max(rangeSize, alignUp(size));
        long address = device.reserve(bytes);
        if (address == 0) {
            return null;
        }
        return pool.addSegment(new Segment(address, bytes));
    }

    /**
     * Maps the missing pages under {@code [address, address + bytes)}. The limit is checked before any page is
     * mapped; the device may still refuse a page, and then the pages mapped so far go back.
     */
    @Override
    public boolean commit(long address, long bytes) {
        List<Long> missing = new ArrayList<>();
        for (long page = alignDown(address); page < address + bytes; page += granularity) {
            if (!pages.containsKey(page)) {
                missing.add(page);
            }
        }
        if (reserved() + missing.size() * granularity > limit) {
            return false;
        }
        for (int i = 0; i < missing.size(); i++) {
            if (!mapPage(missing.get(i))) {
                missing.subList(0, i).forEach(this::unmapPage);
                return false;
            }
        }
        grantAccess(missing);
        return true;
    }

    private boolean mapPage(long page) {
        long handle = device.createPhysical(granularity);
        if (handle == 0) {
            return false;
        }
        device.map(page, granularity, handle);
        pages.put(page, handle);
        maps++;
        return true;
    }

    /** One setAccess per run of consecutive new pages: the driver call is costly, the runs are few. */
    private void grantAccess(List<Long> fresh) {
        int i = 0;
        while (i < fresh.size()) {
            long start = fresh.get(i);
            int j = i + 1;
            while (j < fresh.size() && fresh.get(j) == start + (j - i) * granularity) {
                j++;
            }
            device.setAccess(start, (j - i) * granularity);
            i = j;
        }
    }

    private void unmapPage(long page) {
        long handle = pages.remove(page);
        device.unmap(page, granularity);
        device.releasePhysical(handle);
        unmaps++;
    }

    /** Unmaps every page that lies entirely inside a free chunk; a page that a live block overlaps stays. */
    @Override
    public long releaseCached() {
        long before = reserved();
        for (Pool pool : pools) {
            for (Chunk c : pool.freeChunks()) {
                unmapRange(alignUp(c.address), alignDown(c.end()));
            }
        }
        return before - reserved();
    }

    private void unmapRange(long from, long to) {
        if (from >= to) {
            return;
        }
        for (long page : new ArrayList<>(pages.subMap(from, true, to, false).keySet())) {
            unmapPage(page);
        }
    }

    @Override
    public long reserved() {
        return pages.size() * granularity;
    }

    @Override
    public long deviceAllocations() {
        return maps;
    }

    @Override
    public long deviceFrees() {
        return unmaps;
    }

    @Override
    public String describe() {
        int ranges = 0;
        for (Pool pool : pools) {
            ranges += pool.segments().size();
        }
        return pages.size() + " pages of " + ByteSizes.human(granularity) + " mapped in " + ranges + " expandable address ranges";
    }

    @Override
    public void verify() {
        int pagesInRanges = 0;
        for (Pool pool : pools) {
            for (Segment s : pool.segments()) {
                pagesInRanges += pages.subMap(s.address, true, s.end(), false).size();
                for (Chunk c = s.first; c != null; c = c.next) {
                    if (!c.isFree()) {
                        requireMapped(c);
                    }
                }
            }
        }
        if (pagesInRanges != pages.size()) {
            throw new IllegalStateException("allocator invariant broken: " + (pages.size() - pagesInRanges) + " mapped pages lie outside every range");
        }
    }

    private void requireMapped(Chunk c) {
        for (long page = alignDown(c.address); page < c.end(); page += granularity) {
            if (!pages.containsKey(page)) {
                throw new IllegalStateException("allocator invariant broken: page 0x" + Long.toHexString(page) + " under live " + c + " is not mapped");
            }
        }
    }

    @Override
    public void close() {
        for (long page : new ArrayList<>(pages.keySet())) {
            unmapPage(page);
        }
        for (Pool pool : pools) {
            for (Segment s : pool.segments()) {
                device.unreserve(s.address, s.size);
            }
            pool.segments().clear();
            pool.freeChunks().clear();
        }
    }

    private long alignUp(long bytes) {
        return Math.ceilDiv(bytes, granularity) * granularity;
    }

    private long alignDown(long address) {
        return Math.floorDiv(address, granularity) * granularity;
    }

}
