package dev.jtune.train.report;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

import static dev.jtune.train.report.HtmlReport.escape;
import static dev.jtune.train.report.SvgChart.HEIGHT;
import static dev.jtune.train.report.SvgChart.LEFT;
import static dev.jtune.train.report.SvgChart.TOP;
import static dev.jtune.train.report.SvgChart.WIDTH;
import static dev.jtune.train.report.SvgChart.plotHeight;
import static dev.jtune.train.report.SvgChart.plotWidth;
import static dev.jtune.train.report.SvgChart.px;
import static dev.jtune.train.report.SvgChart.py;

/**
 * A stacked bar chart as inline SVG, on the same axes as {@link SvgChart}: per logged step a bar of layers, the first
 * at the bottom, and a dashed line over the bars for a total measured apart from the layers (it need not equal their
 * sum). A bar reaches half-way to its neighbouring steps, and the first and last stop at their own step, so a run's
 * bars read as a stepped area from its first logged step to its last; a single logged step is a single bar. Steps
 * whose values are all equal are drawn as one bar across them (a plateau costs one rect per layer, not one per step).
 * A layer of zero draws nothing; a step whose values are all NaN (no figures in its log line) is a gap. Each rect's
 * {@code <title>} gives its value, the bar's total and the line's value (the browser shows it on hover).
 *
 * @param title  the caption's heading, with the unit
 * @param note   a sentence under the heading: what is stacked and what the line is
 * @param unit   the values' unit, for the hover text
 * @param steps  the logged steps, increasing
 * @param layers the stacked values (y[i] at steps[i], not negative), bottom first; the legend lists them in order
 * @param line   the line drawn over the bars, dashed; empty for none
 */
record StackedChart(String title, String note, String unit, double[] steps, List<Layer> layers, Optional<Layer> line) implements Chart {

    /** One layer (or the line): its legend name, its colour, and its value at each step. */
    record Layer(String name, String color, double[] y) {
    }

    /** A lone step's bar reaches this far either side of it, in steps: a quarter of the axis' two-step span. */
    static final double SINGLE_BAR_HALF_WIDTH = 0.25;
    private static final double HEADROOM = 1.04;

    StackedChart {
        layers = List.copyOf(layers);
        for (Layer l : layers) {
            requireLength(l, steps.length);
        }
        line.ifPresent(l -> requireLength(l, steps.length));
    }

    private static void requireLength(Layer l, int n) {
        if (l.y().length != n) {
            throw new IllegalArgumentException(l.name() + ": " + l.y().length + " values for " + n + " steps");
        }
    }

    /** Steps first..last (indices) drawn as one bar from left to right (in steps). */
    private record Column(int first, int last, double left, double right) {
    }

    @Override
    public String html() {
        StringBuilder h = new StringBuilder("<figure class=\"chart-box\"><figcaption>").append(escape(title))
                .append("<span class=\"caption-note\">").append(escape(note)).append("</span></figcaption>");
        List<Column> columns = columns();
        double top = 0;
        for (Column c : columns) {
            double lineValue = lineValue(c.first());
            top = Math.max(top, Math.max(stacked(c.first(), layers.size()), Double.isFinite(lineValue) ? lineValue : 0));
        }
        boolean empty = columns.isEmpty() || !(top > 0);
        h.append(String.format(Locale.ROOT, "<svg class=\"chart stacked%s\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">",
                empty ? " empty" : "", WIDTH, HEIGHT, escape(title)));
        if (empty) {
            h.append(String.format(Locale.ROOT, "<text class=\"note\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>",
                    LEFT + plotWidth() / 2, TOP + plotHeight() / 2, SvgChart.NO_FINITE_VALUES));
        } else {
            // every logged step, as the line charts do: a gap's neighbours reach half-way into it
            Axis xAxis = Axis.covering(steps[0], steps[steps.length - 1], true);
            // a little room above the highest value, so a line level with it does not run along the frame
            Axis yAxis = Axis.covering(0, top * HEADROOM, false);
            h.append(SvgChart.yTicks(yAxis)).append(SvgChart.xTicks(xAxis));
            for (Column c : columns) {
                h.append(bar(c, xAxis, yAxis));
            }
            line.ifPresent(l -> h.append(line(l, columns, xAxis, yAxis)));
        }
        // the frame last, so the bars do not cover its edges
        h.append(String.format(Locale.ROOT, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>",
                LEFT, TOP, plotWidth(), plotHeight()));
        h.append("</svg>").append(legend()).append("</figure>");
        return h.toString();
    }

    /** One bar: a rect per non-zero layer, bottom first. Edges are rounded once, so neighbouring rects share them exactly. */
    private String bar(Column c, Axis xAxis, Axis yAxis) {
        String steps = stepsLabel(c);
        StringBuilder h = new StringBuilder(String.format(Locale.ROOT, "<g class=\"column\" data-first-step=\"%d\" data-last-step=\"%d\">",
                Math.round(this.steps[c.first()]), Math.round(this.steps[c.last()])));
        double x0 = round1(px(xAxis, c.left()));
        double x1 = round1(px(xAxis, c.right()));
        String total = "stack " + SvgChart.value(stacked(c.first(), layers.size())) + " " + unit
                + (line.isPresent() && Double.isFinite(lineValue(c.first())) ? "; " + line.get().name() + " " + SvgChart.value(lineValue(c.first())) + " " + unit : "");
        for (int k = 0; k < layers.size(); k++) {
            Layer l = layers.get(k);
            double v = l.y()[c.first()];
            if (!(v > 0)) {
                continue;
            }
            double bottom = round1(py(yAxis, stacked(c.first(), k)));
            double topEdge = round1(py(yAxis, stacked(c.first(), k + 1)));
            h.append(String.format(Locale.ROOT, "<rect class=\"bar\" data-series=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                            + "<title>%s: %s %s %s (%s)</title></rect>",
                    escape(l.name()), x0, topEdge, x1 - x0, bottom - topEdge, l.color(), steps, escape(l.name()), SvgChart.value(v), unit, escape(total)));
        }
        return h.append("</g>").toString();
    }

    /** The line as a staircase over the bars: level across each bar, up or down at the boundary; broken at a gap. */
    private static String line(Layer l, List<Column> columns, Axis xAxis, Axis yAxis) {
        StringBuilder h = new StringBuilder(String.format(Locale.ROOT, "<g class=\"series line\" data-series=\"%s\" stroke=\"%s\">",
                escape(l.name()), l.color()));
        StringBuilder points = new StringBuilder();
        Column previous = null;
        for (Column c : columns) {
            double v = l.y()[c.first()];
            boolean joined = previous != null && previous.last() + 1 == c.first() && Double.isFinite(l.y()[previous.first()]);
            if (!joined && !points.isEmpty()) {
                h.append(polyline(points));
                points.setLength(0);
            }
            if (Double.isFinite(v)) {
                double y = py(yAxis, v);
                points.append(String.format(Locale.ROOT, "%.1f,%.1f %.1f,%.1f ", px(xAxis, c.left()), y, px(xAxis, c.right()), y));
            }
            previous = c;
        }
        if (!points.isEmpty()) {
            h.append(polyline(points));
        }
        return h.append("</g>").toString();
    }

    private static String polyline(StringBuilder points) {
        return "<polyline stroke-dasharray=\"6 4\" points=\"" + points.toString().strip() + "\"/>";
    }

    private String legend() {
        StringBuilder h = new StringBuilder("<ul class=\"legend\">");
        for (Layer l : layers) {
            h.append("<li data-series=\"").append(escape(l.name())).append("\"><span class=\"swatch block\" style=\"background:")
                    .append(l.color()).append(";border-color:").append(l.color()).append("\"></span>").append(escape(l.name())).append("</li>");
        }
        line.ifPresent(l -> h.append("<li data-series=\"").append(escape(l.name())).append("\"><span class=\"swatch dashed\" style=\"border-color:")
                .append(l.color()).append("\"></span>").append(escape(l.name())).append("</li>"));
        return h.append("</ul>").toString();
    }

    /**
     * The bars: each run of consecutive steps with the same values (NaN counting as equal to NaN) becomes one, and
     * a step with no finite value none. A bar reaches half-way to the neighbouring steps (gaps included), clipped to
     * the first and last step; a lone step gets {@link #SINGLE_BAR_HALF_WIDTH} either side.
     */
    private List<Column> columns() {
        List<Column> columns = new ArrayList<>();
        int n = steps.length;
        int i = 0;
        while (i < n) {
            int j = i;
            while (j + 1 < n && sameValues(i, j + 1)) {
                j++;
            }
            if (anyFinite(i)) {
                double left = n == 1 ? steps[0] - SINGLE_BAR_HALF_WIDTH : i == 0 ? steps[0] : (steps[i - 1] + steps[i]) / 2;
                double right = n == 1 ? steps[0] + SINGLE_BAR_HALF_WIDTH : j == n - 1 ? steps[n - 1] : (steps[j] + steps[j + 1]) / 2;
                columns.add(new Column(i, j, left, right));
            }
            i = j + 1;
        }
        return columns;
    }

    private boolean sameValues(int a, int b) {
        for (Layer l : layers) {
            if (Double.compare(l.y()[a], l.y()[b]) != 0) {
                return false;
            }
        }
        return line.isEmpty() || Double.compare(line.get().y()[a], line.get().y()[b]) == 0;
    }

    private boolean anyFinite(int i) {
        return layers.stream().anyMatch(l -> Double.isFinite(l.y()[i])) || Double.isFinite(lineValue(i));
    }

    /** The sum of the first k layers at step index i (the height the k-th layer starts at); NaN layers count 0. */
    private double stacked(int i, int k) {
        double sum = 0;
        for (int m = 0; m < k; m++) {
            double v = layers.get(m).y()[i];
            sum += v > 0 ? v : 0;
        }
        return sum;
    }

    /** The line's value at step index i; NaN when there is no line, which every comparison ignores. */
    private double lineValue(int i) {
        return line.map(l -> l.y()[i]).orElse(Double.NaN);
    }

    private String stepsLabel(Column c) {
        long first = Math.round(steps[c.first()]);
        long last = Math.round(steps[c.last()]);
        return first == last ? "step " + first : "steps " + first + "–" + last;
    }

    private static double round1(double v) {
        return Math.round(v * 10) / 10.0;
    }
}
