package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;

import java.util.EnumMap;
import java.util.Map;

/** The counters behind {@link MemoryStats}: allocated bytes overall and per category, peaks, operation counts. */
final class AllocatorStats {
    private static final MemoryCategory[] CATEGORIES = MemoryCategory.values();

    private long allocated;
    private long peakAllocated;
    private long peakReserved;
    private long allocations;
    private long frees;
    private final long[] byCategory = new long[CATEGORIES.length];
    private final long[] peakByCategory = new long[CATEGORIES.length];
    /** Each category's bytes when the overall peak was last raised: what held the memory at the peak. */
    private final long[] atPeak = new long[CATEGORIES.length];

    void allocated(long size, MemoryCategory category, long reserved) {
        allocations++;
        allocated += size;
        int c = category.ordinal();
        byCategory[c] += size;
        peakByCategory[c] = Math.max(peakByCategory[c], byCategory[c]);
        if (allocated > peakAllocated) {
            peakAllocated = allocated;
            System.arraycopy(byCategory, 0, atPeak, 0, byCategory.length);
        }
        observeReserved(reserved);
    }

    void freed(long size, MemoryCategory category) {
        frees++;
        allocated -= size;
        byCategory[category.ordinal()] -= size;
    }

    /** A live block given back by closing the allocator: no longer allocated, but not a free. */
    void released(long size, MemoryCategory category) {
        allocated -= size;
        byCategory[category.ordinal()] -= size;
    }

    void observeReserved(long reserved) {
        peakReserved = Math.max(peakReserved, reserved);
    }

    /** Peaks restart from the current values, as after {@code torch.cuda.reset_peak_memory_stats}. */
    void resetPeaks(long reserved) {
        peakAllocated = allocated;
        peakReserved = reserved;
        System.arraycopy(byCategory, 0, peakByCategory, 0, byCategory.length);
        System.arraycopy(byCategory, 0, atPeak, 0, byCategory.length);
    }

    long allocated() {
        return allocated;
    }

    long allocated(MemoryCategory category) {
        return byCategory[category.ordinal()];
    }

    MemoryStats snapshot(long reserved, long deviceAllocations, long deviceFrees) {
        return new MemoryStats(allocated, reserved, peakAllocated, Math.max(peakReserved, reserved), allocations, frees,
                deviceAllocations, deviceFrees, toMap(byCategory), toMap(peakByCategory), toMap(atPeak));
    }

    private static Map<MemoryCategory, Long> toMap(long[] values) {
        Map<MemoryCategory, Long> map = new EnumMap<>(MemoryCategory.class);
        for (MemoryCategory c : CATEGORIES) {
            map.put(c, values[c.ordinal()]);
        }
        return map;
    }
}
