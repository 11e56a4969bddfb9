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
 * device's own peak (and, where the allocator recorded it, what each category held at that peak); on the host, the pinned host-mapped bytes by category (host-offloaded or paged optimizer
 * state, the host copies of gradients and weights) and their total. It goes in the run summary
 * ({@link #table()}) and, as {@link #bytes()}, in every logged line of metrics.jsonl.
 */
public record MemoryReport(List<Row> rows) {

    /**
     * One line: a name (also the metrics key), the bytes, where they live, and for a device row the bytes it held at the
     * moment of the device's peak ({@link #NOT_RECORDED} where that is not known or has no meaning).
     */
    public record Row(String key, String label, long bytes, Where where, long atPeak) {
        public Row(String key, String label, long bytes, Where where) {
            this(key, label, bytes, where, NOT_RECORDED);
        }
    }

    /** {@link Row#atPeak} of a row with no figure at the device's peak. */
    public static final long NOT_RECORDED = -1;

    /** The categories that also live on the host (host-offloaded or paged optimizers): their rows say which side. */
    private static final List<MemoryCategory> HOST_CATEGORIES = List.of(MemoryCategory.OPTIMIZER, MemoryCategory.MASTER_WEIGHTS,
            MemoryCategory.GRADIENTS, MemoryCategory.WEIGHTS);
    /**
     * The host rows: those categories, and the checkpointed activations offloaded to the host (whose device row keeps
     * its bare key, {@code activations}, as logs written before activation offload have it).
     */
    private static final List<MemoryCategory> HOST_ROWS = List.of(MemoryCategory.OPTIMIZER, MemoryCategory.MASTER_WEIGHTS,
            MemoryCategory.GRADIENTS, MemoryCategory.WEIGHTS, MemoryCategory.ACTIVATIONS);

    /** The key of the device's peak row. */
    public static final String DEVICE_PEAK = "device_peak";
    /** The key of the pinned (host-mapped) bytes' peak row. */
    public static final String PINNED_HOST_PEAK = "pinned_host_peak";

    public enum Where {
        DEVICE, HOST
    }

    public MemoryReport {
        rows = List.copyOf(rows);
    }

    /** The report of a backend's statistics. */
    public static MemoryReport of(MemoryStats stats) {
        List<Row> rows = new ArrayList<>();
        boolean recorded = !stats.atPeakByCategory().isEmpty();
        for (MemoryCategory c : MemoryCategory.values()) {
            boolean split = HOST_CATEGORIES.contains(c);
            rows.add(new Row(deviceKey(c), label(c) + (split ? " (device)" : ""), stats.peak(c), Where.DEVICE,
                    recorded ? stats.atPeak(c) : NOT_RECORDED));
        }
        rows.add(new Row(DEVICE_PEAK, "device peak", stats.peakAllocated(), Where.DEVICE, recorded ? stats.peakAllocated() : NOT_RECORDED));
        MemoryStats.Host host = stats.host();
        for (MemoryCategory c : HOST_ROWS) {
            rows.add(new Row(hostKey(c), label(c) + " (host)", host.allocated(c), Where.HOST));
        }
        rows.add(new Row("pinned_host", "pinned host, all", host.allocated(), Where.HOST));
        rows.add(new Row(PINNED_HOST_PEAK, "pinned host peak", host.peak(), Where.HOST));
        return new MemoryReport(rows);
    }

    /**
     * The key of category {@code c}'s device row: its name ({@code activations}), or with {@code _device} after it
     * for a category that also has a host row ({@code optimizer_device}). How report.html reads metrics.jsonl back.
     */
    public static String deviceKey(MemoryCategory c) {
        String name = c.name().toLowerCase(Locale.ROOT);
        return HOST_CATEGORIES.contains(c) ? name + "_device" : name;
    }

    /** The key of category {@code c}'s host-mapped row ({@code optimizer_host}); absent from a report for a category with none. */
    public static String hostKey(MemoryCategory c) {
        return c.name().toLowerCase(Locale.ROOT) + "_host";
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
            if (r.key().equals(DEVICE_PEAK)) {
                boolean recorded = r.atPeak() != NOT_RECORDED;
                rows.add(new Row("resident", residentLabel, resident, Where.DEVICE, recorded ? resident : NOT_RECORDED));
                rows.add(new Row(DEVICE_PEAK, "device peak", r.bytes() + resident, Where.DEVICE, recorded ? r.atPeak() + resident : NOT_RECORDED));
                rows.add(new Row("device_reserved_peak", "device peak, reserved", stats.peakReserved() + resident, Where.DEVICE));
            } else {
                rows.add(r);
            }
        }
        return new MemoryReport(rows);
    }

    /** Whether a row has a figure at the device's peak (the tables then add its column). */
    private boolean recordsAtPeak() {
        return rows.stream().anyMatch(r -> r.atPeak() != NOT_RECORDED);
    }

    /** The bytes of the row named {@code key}; 0 when there is none. */
    public long bytes(String key) {
        return rows.stream().filter(r -> r.key().equals(key)).mapToLong(Row::bytes).findFirst().orElse(0);
    }

    static String label(MemoryCategory c) {
        return c.name().toLowerCase(Locale.ROOT).replace('_', ' ');
    }

    /** Key to bytes, for metrics.jsonl. */
    public SequencedMap<String, Long> bytes() {
        SequencedMap<String, Long> out = new LinkedHashMap<>();
        rows.forEach(r -> out.put(r.key(), r.bytes()));
        return out;
    }

    /**
     * The run summary's table: category, bytes (GiB), device or host, and where recorded what each device row held at
     * the device's peak (GiB); rows of zero bytes left out.
     */
    public String table() {
        boolean atPeak = recordsAtPeak();
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-26s %12s  %-6s%s", "memory", "GiB", "where",
                atPeak ? String.format(Locale.ROOT, " %12s", "at the peak") : "").stripTrailing()).append(System.lineSeparator());
        for (Row r : rows) {
            if (r.bytes() != 0 || r.key().equals(DEVICE_PEAK)) {
                String at = !atPeak || r.atPeak() == NOT_RECORDED ? "" : String.format(Locale.ROOT, " %12.3f", r.atPeak() / (double) (1L << 30));
                sb.append(String.format(Locale.ROOT, "%-26s %12.3f  %-6s%s", r.label(), r.bytes() / (double) (1L << 30),
                        r.where().name().toLowerCase(Locale.ROOT), at).stripTrailing()).append(System.lineSeparator());
            }
        }
        return sb.toString();
    }

    /**
     * Every row, zero or not, with its exact bytes too: the plan's table, where a zero says "none of this". A last
     * column, where recorded, gives each device row's bytes at the moment of the device's peak: the categories' own
     * peaks (the bytes column) need not coincide, the column sums to the peak.
     */
    public String fullTable() {
        boolean atPeak = recordsAtPeak();
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-48s %16s %10s  %-6s%s%n", "memory", "bytes", "GiB", "where",
                atPeak ? String.format(Locale.ROOT, " %18s", "at the device peak") : ""));
        for (Row r : rows) {
            String at = !atPeak ? "" : r.atPeak() == NOT_RECORDED ? String.format(Locale.ROOT, " %18s", "") : String.format(Locale.ROOT, " %,18d", r.atPeak());
            sb.append(String.format(Locale.ROOT, "%-48s %,16d %10.3f  %-6s%s", r.label(), r.bytes(), r.bytes() / (double) (1L << 30),
                    r.where().name().toLowerCase(Locale.ROOT), at).stripTrailing()).append(System.lineSeparator());
        }
        return sb.toString();
    }
}
