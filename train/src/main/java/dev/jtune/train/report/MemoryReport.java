package dev.jtune.train.report;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.memory.MemoryStats;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.SequencedMap;

/**
 * Where a run's memory went, by category: on the device, each category's peak (the allocator's per-category high
 * water mark; the categories' peaks need not coincide, so they may add up to more than the device's peak), then the
 * device's own peak; on the host, the pinned host-mapped bytes by category (host-offloaded or paged optimizer
 * state, the host copies of gradients and weights) and their total. It goes in the run summary
 * ({@link #table()}) and, as {@link #bytes()}, in every logged line of metrics.jsonl.
 */
public record MemoryReport(List<Row> rows) {

    /** One line: a name (also the metrics key), the bytes, and where they live. */
    public record Row(String key, String label, long bytes, Where where) {
    }

    /** The categories that also live on the host (host-offloaded or paged optimizers): their rows say which side. */
    private static final List<MemoryCategory> HOST_CATEGORIES = List.of(MemoryCategory.OPTIMIZER, MemoryCategory.MASTER_WEIGHTS,
            MemoryCategory.GRADIENTS, MemoryCategory.WEIGHTS);

    public enum Where {
        DEVICE, HOST
    }

    public MemoryReport {
        rows = List.copyOf(rows);
    }

    /** The report of a backend's statistics. */
    public static MemoryReport of(MemoryStats stats) {
        List<Row> rows = new ArrayList<>();
        for (MemoryCategory c : MemoryCategory.values()) {
            String name = c.name().toLowerCase(Locale.ROOT);
            boolean split = HOST_CATEGORIES.contains(c);
            rows.add(new Row(split ? name + "_device" : name, label(c) + (split ? " (device)" : ""), stats.peak(c), Where.DEVICE));
        }
        rows.add(new Row("device_peak", "device peak", stats.peakAllocated(), Where.DEVICE));
        MemoryStats.Host host = stats.host();
        for (MemoryCategory c : HOST_CATEGORIES) {
            rows.add(new Row(c.name().toLowerCase(Locale.ROOT) + "_host", label(c) + " (host)", host.allocated(c), Where.HOST));
        }
        rows.add(new Row("pinned_host", "pinned host, all", host.allocated(), Where.HOST));
        rows.add(new Row("pinned_host_peak", "pinned host peak", host.peak(), Where.HOST));
        return new MemoryReport(rows);
    }

    /**
     * A planned step's report ({@code jtune plan}): {@link #of}'s rows from the meta backend's statistics, with the
     * per-GPU buffers meta does not model ({@code resident}: cuBLASLt's workspace, the NF4 tables) as a line of
     * their own and added to the device peak, and the allocator's reserved peak (allocations rounded up to its
     * pages, what the GPU must actually hold) with them too, after it.
     */
    public static MemoryReport planned(MemoryStats stats, long resident, String residentLabel) {
        List<Row> rows = new ArrayList<>();
        for (Row r : of(stats).rows()) {
            if (r.key().equals("device_peak")) {
                rows.add(new Row("resident", residentLabel, resident, Where.DEVICE));
                rows.add(new Row("device_peak", "device peak", r.bytes() + resident, Where.DEVICE));
                rows.add(new Row("device_reserved_peak", "device peak, reserved", stats.peakReserved() + resident, Where.DEVICE));
            } else {
                rows.add(r);
            }
        }
        return new MemoryReport(rows);
    }

    /** The bytes of the row named {@code key}; 0 when there is none. */
    public long bytes(String key) {
        return rows.stream().filter(r -> r.key().equals(key)).mapToLong(Row::bytes).findFirst().orElse(0);
    }

    private static String label(MemoryCategory c) {
        return c.name().toLowerCase(Locale.ROOT).replace('_', ' ');
    }

    /** Key to bytes, for metrics.jsonl. */
    public SequencedMap<String, Long> bytes() {
        SequencedMap<String, Long> out = new LinkedHashMap<>();
        rows.forEach(r -> out.put(r.key(), r.bytes()));
        return out;
    }

    /** The run summary's table: category, bytes (GiB), device or host; rows of zero bytes left out. */
    public String table() {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-26s %12s  %s%n", "memory", "GiB", "where"));
        for (Row r : rows) {
            if (r.bytes() != 0 || r.key().equals("device_peak")) {
                sb.append(String.format(Locale.ROOT, "%-26s %12.3f  %s%n", r.label(), r.bytes() / (double) (1L << 30),
                        r.where().name().toLowerCase(Locale.ROOT)));
            }
        }
        return sb.toString();
    }

    /** Every row, zero or not, with its exact bytes too: the plan's table, where a zero says "none of this". */
    public String fullTable() {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-48s %16s %10s  %s%n", "memory", "bytes", "GiB", "where"));
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "%-48s %,16d %10.3f  %s%n", r.label(), r.bytes(), r.bytes() / (double) (1L << 30),
                    r.where().name().toLowerCase(Locale.ROOT)));
        }
        return sb.toString();
    }
}
