package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;

import java.util.Map;

/**
 * A snapshot of one device's memory as its allocator sees it. {@code allocated}: bytes in live blocks;
 * {@code reserved}: bytes taken from the device (allocated plus cached); peaks since start or the last
 * {@code resetPeaks}. Per category: bytes allocated now and at that category's peak.
 */
public record MemoryStats(
        long allocated,
        long reserved,
        long peakAllocated,
        long peakReserved,
        long allocations,
        long frees,
        long deviceAllocations,
        long deviceFrees,
        Map<MemoryCategory, Long> allocatedByCategory,
        Map<MemoryCategory, Long> peakByCategory) {

    public MemoryStats {
        allocatedByCategory = Map.copyOf(allocatedByCategory);
        peakByCategory = Map.copyOf(peakByCategory);
    }

    public long allocated(MemoryCategory category) {
        return allocatedByCategory.getOrDefault(category, 0L);
    }

    public long peak(MemoryCategory category) {
        return peakByCategory.getOrDefault(category, 0L);
    }

    public static String gib(long bytes) {
        return String.format(java.util.Locale.ROOT, "%.3f GiB", bytes / (double) (1L << 30));
    }

    @Override
    public String toString() {
        return "allocated " + gib(allocated) + " (peak " + gib(peakAllocated) + "), reserved " + gib(reserved)
                + " (peak " + gib(peakReserved) + ")";
    }
}
