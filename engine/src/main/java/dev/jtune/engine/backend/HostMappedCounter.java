package dev.jtune.engine.backend;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.memory.MemoryStats;

import java.util.EnumMap;
import java.util.Map;

/**
 * A backend's count of its {@link dev.jtune.engine.Placement#HOST_MAPPED} storage: bytes now, per category, and
 * the peak. Kept apart from the device allocator so that no device figure includes host memory.
 */
public final class HostMappedCounter {
    private long allocated;
    private long peak;
    private final Map<MemoryCategory, Long> byCategory = new EnumMap<>(MemoryCategory.class);

    public synchronized void allocated(long bytes, MemoryCategory category) {
        allocated += bytes;
        peak = Math.max(peak, allocated);
        byCategory.merge(category, bytes, Long::sum);
    }

    public synchronized void freed(long bytes, MemoryCategory category) {
        allocated -= bytes;
        byCategory.merge(category, -bytes, Long::sum);
    }

    public synchronized void resetPeak() {
        peak = allocated;
    }

    public synchronized MemoryStats.Host snapshot() {
        return new MemoryStats.Host(allocated, peak, byCategory);
    }
}
