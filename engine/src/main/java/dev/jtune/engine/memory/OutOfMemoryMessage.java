package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.OutOfDeviceMemoryException;

/**
 * Builds the error for an allocation that did not fit even after the cache was released: every figure a user
 * needs to act, and a hint that depends on why it failed (fragmentation, a memory limit, or simply too much live).
 */
final class OutOfMemoryMessage {
    private OutOfMemoryMessage() {
    }

    record Facts(long requested, long rounded, String pool, MemoryCategory category, long capacity, long deviceFree,
                 long limit, boolean limited, boolean expandable, MemoryStats stats, String holdings) {
    }

    static OutOfDeviceMemoryException exception(Facts f) {
        long free = Math.max(0, Math.min(f.deviceFree(), f.limit() - f.stats().reserved()));
        StringBuilder m = new StringBuilder("out of device memory: tried to allocate ")
                .append(ByteSizes.human(f.requested())).append(" (").append(f.requested()).append(" bytes");
        if (f.rounded() != f.requested()) {
            m.append(", ").append(f.rounded()).append(" after rounding");
        }
        m.append(") for ").append(f.category()).append(" from the ").append(f.pool()).append(" pool. ");
        m.append("Device: ").append(ByteSizes.human(f.capacity())).append(" total, ")
                .append(ByteSizes.human(f.deviceFree())).append(" free");
        long elsewhere = f.capacity() - f.deviceFree() - f.stats().reserved();
        if (elsewhere > 0) {
            m.append(", ").append(ByteSizes.human(elsewhere)).append(" held outside this allocator (CUDA context, other processes)");
        }
        if (f.limited()) {
            m.append("; memory limit ").append(ByteSizes.human(f.limit()));
        }
        m.append(". This allocator: ").append(ByteSizes.human(f.stats().allocated())).append(" allocated in live blocks, ")
                .append(ByteSizes.human(f.stats().reserved())).append(" reserved (")
                .append(ByteSizes.human(f.stats().reserved() - f.stats().allocated())).append(" cached but unused; ")
                .append(f.holdings()).append("). Allocated by category: ").append(categories(f.stats())).append(". ");
        String hint = hint(f);
        m.append("Hint: ").append(hint);
        return new OutOfDeviceMemoryException(m.toString(), f.requested(), free, hint);
    }

    private static String categories(MemoryStats stats) {
        StringBuilder s = new StringBuilder();
        for (MemoryCategory c : MemoryCategory.values()) {
            if (stats.allocated(c) > 0) {
                s.append(s.isEmpty() ? "" : ", ").append(c).append(' ').append(ByteSizes.human(stats.allocated(c)));
            }
        }
        return s.isEmpty() ? "none" : s.toString();
    }

    private static String hint(Facts f) {
        long cached = f.stats().reserved() - f.stats().allocated();
        if (!f.expandable() && cached >= f.rounded()) {
            return "enough memory is cached, but split over segments that each still hold a live block "
                    + "(fragmentation); expandable segments (CachingAllocator.Config.expandableSegments) map physical "
                    + "memory only under live blocks and avoid this.";
        }
        if (f.limited() && f.limit() < f.capacity()) {
            return "the memory limit is what ran out; raise it, or free tensors (close scopes) before this point.";
        }
        return "live tensors need more than the device has; close scopes (free tensors) earlier, reduce the "
                + "batch size or sequence length, use activation checkpointing, or quantize frozen weights.";
    }
}
