package dev.jtune.train.report;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static dev.jtune.train.report.HtmlReport.escape;

/**
 * One line chart as inline SVG: series of (step, value) points, ticked axes, a legend, and each point's value as
 * the {@code <title>} of its marker (the browser shows it on hover, no script needed). Non-finite values are gaps:
 * a series' line is split there, so one NaN neither blanks nor stretches the chart.
 *
 * @param title  the caption, with the unit
 * @param series the lines, drawn in order (the legend lists them in the same order)
 */
record SvgChart(String title, List<Series> series) implements Chart {

    /** One line: its legend name, its colour, whether it is dashed, and its points (x[i], y[i]). */
    record Series(String name, String color, boolean dashed, double[] x, double[] y) {
        Series {
            if (x.length != y.length) {
                throw new IllegalArgumentException(name + ": " + x.length + " x values but " + y.length + " y values");
            }
        }
    }

    // the drawing's own coordinates; the SVG scales to its box through viewBox
    static final int WIDTH = 560;
    static final int HEIGHT = 300;
    static final int LEFT = 70;
    static final int RIGHT = 16;
    static final int TOP = 12;
    static final int BOTTOM = 44;
    /** Above this many markers a chart hides them until hovered: a dot per point would smear into a thick line. */
    private static final int DENSE_POINTS = 120;

    /** The text a chart shows instead of lines when none of its values is a number. */
    static final String NO_FINITE_VALUES = "no finite values";

    @Override
    public String html() {
        StringBuilder h = new StringBuilder("<figure class=\"chart-box\"><figcaption>").append(escape(title)).append("</figcaption>");
        double[] xRange = range(series.stream().map(Series::x).toList(), false);
        double[] yRange = range(series.stream().map(Series::y).toList(), true);
        boolean empty = yRange == null;
        h.append(String.format(Locale.ROOT, "<svg class=\"chart%s\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">",
                empty ? " empty" : finitePoints() > DENSE_POINTS ? " dense" : "", WIDTH, HEIGHT, escape(title)));
        h.append(String.format(Locale.ROOT, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>",
                LEFT, TOP, plotWidth(), plotHeight()));
        if (empty || xRange == null) {
            h.append(String.format(Locale.ROOT, "<text class=\"note\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>",
                    LEFT + plotWidth() / 2, TOP + plotHeight() / 2, NO_FINITE_VALUES));
        } else {
            Axis xAxis = Axis.covering(xRange[0], xRange[1], true);
            Axis yAxis = Axis.covering(yRange[0], yRange[1], false);
            h.append(yTicks(yAxis)).append(xTicks(xAxis));
            for (Series s : series) {
                h.append(lines(s, xAxis, yAxis));
            }
        }
        h.append("</svg>").append(legend()).append("</figure>");
        return h.toString();
    }

    /** The horizontal grid lines and their value labels. */
    static String yTicks(Axis axis) {
        StringBuilder h = new StringBuilder("<g class=\"axis y\">");
        for (double t : axis.ticks()) {
            double py = py(axis, t);
            h.append(String.format(Locale.ROOT, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", LEFT, LEFT + plotWidth(), py, py))
                    .append(String.format(Locale.ROOT, "<text class=\"ytick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%s</text>",
                            LEFT - 6, py, axis.label(t)));
        }
        return h.append("</g>").toString();
    }

    /** The step numbers along the bottom, with small tick marks, and the axis' name. */
    static String xTicks(Axis axis) {
        StringBuilder h = new StringBuilder("<g class=\"axis x\">");
        int base = TOP + plotHeight();
        for (double t : axis.ticks()) {
            double px = px(axis, t);
            h.append(String.format(Locale.ROOT, "<line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\"/>", px, px, base, base + 5))
                    .append(String.format(Locale.ROOT, "<text class=\"xtick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", px, base + 18, axis.label(t)));
        }
        h.append(String.format(Locale.ROOT, "<text class=\"axis-name\" x=\"%d\" y=\"%d\" text-anchor=\"end\">step</text>", LEFT + plotWidth(), HEIGHT - 4));
        return h.append("</g>").toString();
    }

    /** A series: one polyline per run of finite values, and a hoverable marker per finite point. */
    private static String lines(Series s, Axis xAxis, Axis yAxis) {
        StringBuilder h = new StringBuilder(String.format(Locale.ROOT, "<g class=\"series\" data-series=\"%s\" stroke=\"%s\" fill=\"%s\">",
                escape(s.name()), s.color(), s.color()));
        for (List<Integer> run : finiteRuns(s.y())) {
            if (run.size() > 1) { // a lone point between gaps has no line; its marker shows it
                h.append("<polyline").append(s.dashed() ? " stroke-dasharray=\"6 4\"" : "").append(" points=\"");
                for (int i : run) {
                    h.append(String.format(Locale.ROOT, "%.1f,%.1f ", px(xAxis, s.x()[i]), py(yAxis, s.y()[i])));
                }
                h.setLength(h.length() - 1);
                h.append("\"/>");
            }
        }
        for (int i = 0; i < s.y().length; i++) {
            if (Double.isFinite(s.y()[i])) {
                h.append(String.format(Locale.ROOT, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\"><title>step %d: %s %s</title></circle>",
                        px(xAxis, s.x()[i]), py(yAxis, s.y()[i]), Math.round(s.x()[i]), escape(s.name()), value(s.y()[i])));
            }
        }
        return h.append("</g>").toString();
    }

    /** The indices of each maximal run of consecutive finite values. */
    static List<List<Integer>> finiteRuns(double[] y) {
        List<List<Integer>> runs = new ArrayList<>();
        List<Integer> run = new ArrayList<>();
        for (int i = 0; i < y.length; i++) {
            if (Double.isFinite(y[i])) {
                run.add(i);
            } else if (!run.isEmpty()) {
                runs.add(run);
                run = new ArrayList<>();
            }
        }
        if (!run.isEmpty()) {
            runs.add(run);
        }
        return runs;
    }

    private String legend() {
        StringBuilder h = new StringBuilder("<ul class=\"legend\">");
        for (Series s : series) {
            h.append("<li data-series=\"").append(escape(s.name())).append("\"><span class=\"swatch")
                    .append(s.dashed() ? " dashed" : "").append("\" style=\"border-color:").append(s.color()).append("\"></span>")
                    .append(escape(s.name())).append("</li>");
        }
        return h.append("</ul>").toString();
    }

    /** [min, max] over the finite values of all arrays, or null when there is none. */
    private static double[] range(List<double[]> arrays, boolean finiteOnly) {
        double lo = Double.POSITIVE_INFINITY;
        double hi = Double.NEGATIVE_INFINITY;
        for (double[] a : arrays) {
            for (double v : a) {
                if (Double.isFinite(v) || !finiteOnly) {
                    lo = Math.min(lo, v);
                    hi = Math.max(hi, v);
                }
            }
        }
        return Double.isFinite(lo) && Double.isFinite(hi) ? new double[] {lo, hi} : null;
    }

    private int finitePoints() {
        int n = 0;
        for (Series s : series) {
            for (double v : s.y()) {
                n += Double.isFinite(v) ? 1 : 0;
            }
        }
        return n;
    }

    /** A point's value for its hover text: five significant digits, exponent form when tiny or huge. */
    static String value(double v) {
        double a = Math.abs(v);
        if (a != 0 && (a < 1e-3 || a >= 1e7)) {
            return String.format(Locale.ROOT, "%.4e", v);
        }
        return new BigDecimal(v).round(new MathContext(5)).stripTrailingZeros().toPlainString();
    }

    static double px(Axis axis, double x) {
        return LEFT + axis.fraction(x) * plotWidth();
    }

    static double py(Axis axis, double y) {
        return TOP + (1 - axis.fraction(y)) * plotHeight();
    }

    static int plotWidth() {
        return WIDTH - LEFT - RIGHT;
    }

    static int plotHeight() {
        return HEIGHT - TOP - BOTTOM;
    }
}
