package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;

import java.util.Map;

/**
 * A snapshot of one device's memory as its allocator sees it. {@code allocated}: bytes in live blocks;
 * {@code reserved}: bytes taken from the device (allocated plus cached); peaks since start or the last
 * {@code resetPeaks}. Per category: bytes allocated now, at that category's peak, and at the moment of the device's
 * peak ({@code atPeakByCategory}: what held the memory then; the categories' own peaks need not coincide with it, empty
 * where the source does not record it). {@code host}: the host memory
 * this device maps ({@link dev.jtune.engine.Placement#HOST_MAPPED} tensors), a figure of its own that none of the
 * device figures include.
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
        Map<MemoryCategory, Long> peakByCategory,
        Map<MemoryCategory, Long> atPeakByCategory,
        Host host) {

    public MemoryStats {
        allocatedByCategory = Map.copyOf(allocatedByCategory);
        peakByCategory = Map.copyOf(peakByCategory);
        atPeakByCategory = Map.copyOf(atPeakByCategory);
        java.util.Objects.requireNonNull(host, "host");
    }

    /** Device figures only (no host-mapped memory), with what each category held at the device's peak. */
    public MemoryStats(long allocated, long reserved, long peakAllocated, long peakReserved, long allocations, long frees,
                       long deviceAllocations, long deviceFrees, Map<MemoryCategory, Long> allocatedByCategory,
                       Map<MemoryCategory, Long> peakByCategory, Map<MemoryCategory, Long> atPeakByCategory) {
        this(allocated, reserved, peakAllocated, peakReserved, allocations, frees, deviceAllocations, deviceFrees,
                allocatedByCategory, peakByCategory, atPeakByCategory, Host.NONE);
    }

    /** Device figures only, without the categories at the device's peak. */
    public MemoryStats(long allocated, long reserved, long peakAllocated, long peakReserved, long allocations, long frees,
                       long deviceAllocations, long deviceFrees, Map<MemoryCategory, Long> allocatedByCategory,
                       Map<MemoryCategory, Long> peakByCategory) {
        this(allocated, reserved, peakAllocated, peakReserved, allocations, frees, deviceAllocations, deviceFrees,
                allocatedByCategory, peakByCategory, Map.of());
    }

    /**
     * Pinned host memory the device maps: bytes live now, their peak (since start or the last {@code resetPeaks}),
     * and bytes per category now. Not cached: a host-mapped tensor's memory is freed when its storage is.
     */
    public record Host(long allocated, long peak, Map<MemoryCategory, Long> allocatedByCategory) {
        public static final Host NONE = new Host(0, 0, Map.of());

        public Host {
            allocatedByCategory = Map.copyOf(allocatedByCategory);
        }

        public long allocated(MemoryCategory category) {
            return allocatedByCategory.getOrDefault(category, 0L);
        }
    }

    /** This snapshot with {@code host} as its host-mapped figures. */
    public MemoryStats withHost(Host host) {
        return new MemoryStats(allocated, reserved, peakAllocated, peakReserved, allocations, frees, deviceAllocations,
                deviceFrees, allocatedByCategory, peakByCategory, atPeakByCategory, host);
    }

    public long allocated(MemoryCategory category) {
        return allocatedByCategory.getOrDefault(category, 0L);
    }

    public long peak(MemoryCategory category) {
        return peakByCategory.getOrDefault(category, 0L);
    }

    /** Bytes of {@code category} allocated at the moment of the device's peak (0 where none, or not recorded). */
    public long atPeak(MemoryCategory category) {
        return atPeakByCategory.getOrDefault(category, 0L);
    }

    public static String gib(long bytes) {
        return String.format(java.util.Locale.ROOT, "%.3f GiB", bytes / (double) (1L << 30));
    }

    @Override
    public String toString() {
        return "allocated " + gib(allocated) + " (peak " + gib(peakAllocated) + "), reserved " + gib(reserved)
                + " (peak " + gib(peakReserved) + ")"
                + (host.peak() > 0 ? "; host-mapped " + gib(host.allocated()) + " (peak " + gib(host.peak()) + ")" : "");
    }
}
