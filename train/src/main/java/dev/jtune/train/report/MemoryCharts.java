package dev.jtune.train.report;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.train.loop.StepRecord;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.ToDoubleFunction;

/**
 * report.html's memory-by-category charts, read back from each logged step's {@code memory_bytes}
 * ({@link MemoryReport#bytes()}): the device's category peaks stacked under its measured peak, and the host-mapped
 * bytes by category stacked under their peak. A category that is zero at every step is left out (of the bars and
 * the legend), and a chart with no category at all is not drawn: a run without host-mapped memory has no host
 * chart, and a log from before memory_bytes existed has neither. A category has one colour in both charts.
 */
final class MemoryCharts {
    private MemoryCharts() {
    }

    private static final double GIB = 1L << 30;
    private static final String PEAK_COLOR = "#222222";

    /** The device chart, then the host chart, each only when it has a non-zero category; {@code device} names the device. */
    static List<StackedChart> of(List<StepRecord> steps, String device) {
        List<StackedChart> charts = new ArrayList<>();
        // a cpu run ("cpu (host memory)", RunReport.memoryDevice) maps plain host memory: nothing there is pinned
        boolean cpu = device.startsWith("cpu");
        String on = device.isBlank() ? "" : " on " + device;
        double[] x = steps.stream().mapToDouble(StepRecord::step).toArray();

        List<StackedChart.Layer> deviceLayers = layers(steps, MemoryCharts::deviceBytes);
        if (!deviceLayers.isEmpty()) {
            charts.add(new StackedChart("stacked peaks by category" + on + " (GiB)",
                    "Each category's peak since the steps started, stacked in the legend's order from the bottom; the dashed line is the"
                            + " measured device peak. Category peaks need not coincide, so the stack can add up to more than the peak.",
                    "GiB", x, deviceLayers, Optional.of(new StackedChart.Layer("device peak", PEAK_COLOR, gib(steps, MemoryReport.DEVICE_PEAK)))));
        }
        List<StackedChart.Layer> hostLayers = layers(steps, MemoryCharts::hostBytes);
        if (!hostLayers.isEmpty()) {
            StackedChart.Layer peak = new StackedChart.Layer(cpu ? "host-mapped peak" : "pinned host peak", PEAK_COLOR,
                    gib(steps, MemoryReport.PINNED_HOST_PEAK));
            charts.add(new StackedChart(
                    (cpu ? "host-mapped memory by category" + on + ", not pinned" : "pinned host memory by category, mapped" + (device.isBlank() ? "" : " by " + device)) + " (GiB)",
                    "Host-mapped bytes held at each logged step, by category, stacked in the legend's order from the bottom; the dashed"
                            + " line is their peak. They are not part of the device figures.",
                    "GiB", x, hostLayers, Arrays.stream(peak.y()).anyMatch(v -> v > 0) ? Optional.of(peak) : Optional.empty()));
        }
        return charts;
    }

    /** A fixed colour per category (Tableau 10), the same in every chart; a category added later gets grey. */
    static String color(MemoryCategory c) {
        return switch (c) {
            case WEIGHTS -> "#4e79a7";
            case QUANTIZED_WEIGHTS -> "#76b7b2";
            case ADAPTERS -> "#59a14f";
            case GRADIENTS -> "#f28e2b";
            case BACKWARD -> "#ff9da7";
            case OPTIMIZER -> "#e15759";
            case MASTER_WEIGHTS -> "#b07aa1";
            case ACTIVATIONS -> "#edc948";
            case WORKSPACE -> "#9c755f";
            case OTHER -> "#bab0ac";
            default -> "#7f7f7f";
        };
    }

    /** One layer per category, in the enum's order, leaving out those zero (or absent) at every step. */
    private static List<StackedChart.Layer> layers(List<StepRecord> steps, CategoryBytes bytes) {
        List<StackedChart.Layer> layers = new ArrayList<>();
        for (MemoryCategory c : MemoryCategory.values()) {
            double[] y = steps.stream().mapToDouble(s -> s.memoryBytes().isEmpty() ? Double.NaN : bytes.of(s.memoryBytes(), c) / GIB).toArray();
            if (Arrays.stream(y).anyMatch(v -> v > 0)) {
                layers.add(new StackedChart.Layer(MemoryReport.label(c), color(c), y));
            }
        }
        return layers;
    }

    private interface CategoryBytes {
        long of(Map<String, Long> memoryBytes, MemoryCategory c);
    }

    /** A category's device bytes; a log written before the category also had a host row keeps it under its bare name. */
    private static long deviceBytes(Map<String, Long> bytes, MemoryCategory c) {
        Long v = bytes.get(MemoryReport.deviceKey(c));
        return v != null ? v : bytes.getOrDefault(c.name().toLowerCase(Locale.ROOT), 0L);
    }

    private static long hostBytes(Map<String, Long> bytes, MemoryCategory c) {
        return bytes.getOrDefault(MemoryReport.hostKey(c), 0L);
    }

    /** A row's bytes at each step in GiB; NaN where the step's line has no such row. */
    private static double[] gib(List<StepRecord> steps, String key) {
        ToDoubleFunction<StepRecord> f = s -> {
            Long v = s.memoryBytes().get(key);
            return v == null ? Double.NaN : v / GIB;
        };
        return steps.stream().mapToDouble(f).toArray();
    }
}
