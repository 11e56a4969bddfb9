package dev.jtune.engine.memory;

import java.util.ArrayList;
import java.util.List;

/**
 * Segments that are each one {@code malloc}. A segment can only go back to the device whole, so a single live
 * block keeps all of its segment reserved: this is the fragmentation that {@link ExpandableBacking} removes.
 */
sealed class PlainBacking implements Backing permits UncachedBacking {
    final DeviceMemory device;
    private final long limit;
    final List<Pool> pools;
    private long reserved;
    private long mallocs;
    private long frees;

    PlainBacking(DeviceMemory device, long limit, List<Pool> pools) {
        this.device = device;
        this.limit = limit;
        this.pools = pools;
    }

    @Override
    public Chunk grow(Pool pool, long size) {
        long bytes = segmentSize(size);
        if (reserved + bytes > limit) {
            return null;
        }
        long address = device.malloc(bytes);
        if (address == 0) {
            return null;
        }
        mallocs++;
        reserved += bytes;
        return pool.addSegment(new Segment(address, bytes));
    }

    /** The malloc size of a new segment for a block of {@code size}. */
    long segmentSize(long size) {
        return SizeClasses.plainSegmentSize(size);
    }

    @Override
    public boolean commit(long address, long bytes) {
        return true; // malloc'd memory is usable as a whole
    }

    @Override
    public long releaseCached() {
        long released = 0;
        for (Pool pool : pools) {
            for (Segment s : new ArrayList<>(pool.segments())) {
                if (s.isUnused()) {
                    pool.removeSegment(s);
                    freeSegment(s);
                    released += s.size;
                }
            }
        }
        return released;
    }

    void freeSegment(Segment s) {
        device.free(s.address);
        frees++;
        reserved -= s.size;
    }

    @Override
    public long reserved() {
        return reserved;
    }

    @Override
    public long deviceAllocations() {
        return mallocs;
    }

    @Override
    public long deviceFrees() {
        return frees;
    }

    @Override
    public String describe() {
        int segments = 0;
        int unused = 0;
        for (Pool pool : pools) {
            for (Segment s : pool.segments()) {
                segments++;
                unused += s.isUnused() ? 1 : 0;
            }
        }
        return segments + " plain segments, " + unused + " of them without live blocks";
    }

    @Override
    public void verify() {
        long sum = 0;
        for (Pool pool : pools) {
            for (Segment s : pool.segments()) {
                sum += s.size;
            }
        }
        if (sum != reserved) {
            throw new IllegalStateException("allocator invariant broken: segments hold " + sum + " bytes, reserved says " + reserved);
        }
    }

    @Override
    public void close() {
        for (Pool pool : pools) {
            for (Segment s : pool.segments()) {
                freeSegment(s);
            }
            pool.segments().clear();
            pool.freeChunks().clear();
        }
    }
}
