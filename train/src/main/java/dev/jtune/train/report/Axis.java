package dev.jtune.train.report;

import java.util.Locale;

/**
 * One chart axis: a range widened to round bounds and its tick values, spaced 1, 2 or 5 times a power of ten
 * (Heckbert's "nice numbers"), so the labels read as 0.5, 1.0, 1.5 rather than 0.4872, 0.9744.
 *
 * @param min      the axis' lower bound (the first tick)
 * @param max      the axis' upper bound (the last tick)
 * @param step     the distance between ticks
 * @param integers whether the axis counts things (steps): ticks are whole numbers and print without decimals
 */
record Axis(double min, double max, double step, boolean integers) {
    /** About this many ticks per axis (4 to 10 come out): enough to read values off, few enough that labels don't collide. */
    static final int TARGET_TICKS = 6;

    /** The axis covering [lo, hi] (finite, lo <= hi); a single value gets a small range around it. */
    static Axis covering(double lo, double hi, boolean integers) {
        if (!(Double.isFinite(lo) && Double.isFinite(hi)) || lo > hi) {
            throw new IllegalArgumentException("axis range [" + lo + ", " + hi + "]");
        }
        // a flat series (one point, a constant learning rate) still needs a span to place ticks on
        if (hi - lo <= Math.max(Math.abs(hi), Math.abs(lo)) * 1e-9) {
            double pad = integers ? 1 : (lo == 0 ? 1 : Math.abs(lo) * 0.1);
            lo -= pad;
            hi += pad;
        }
        double step = nice((hi - lo) / (TARGET_TICKS - 1));
        if (integers) {
            step = Math.max(1, step);
        }
        double min = Math.floor(lo / step) * step;
        double max = Math.ceil(hi / step) * step;
        if (max - min < 2 * step) {
            max = min + 2 * step; // steps 1 and 2 only: whole-number ticks would be just two
        }
        return new Axis(min, max, step, integers);
    }

    /** The tick values from min to max inclusive. */
    double[] ticks() {
        int n = (int) Math.round((max - min) / step) + 1;
        double[] t = new double[n];
        for (int i = 0; i < n; i++) {
            t[i] = min + i * step;
        }
        return t;
    }

    /** Where v falls on the axis, 0 at min and 1 at max. */
    double fraction(double v) {
        return (v - min) / (max - min);
    }

    /** A tick's label: as many decimals as the step needs; exponent form for very small or large magnitudes. */
    String label(double v) {
        if (Math.abs(v) < step * 1e-6) {
            return "0"; // not "-0" nor "1.2e-20" from accumulated rounding
        }
        if (integers) {
            return Long.toString(Math.round(v));
        }
        double magnitude = Math.max(Math.abs(min), Math.abs(max));
        if (magnitude >= 1e6 || magnitude < 1e-3) {
            int digits = clamp((int) (Math.floor(Math.log10(magnitude)) - Math.floor(Math.log10(step))), 0, 6);
            return String.format(Locale.ROOT, "%." + digits + "e", v);
        }
        int decimals = clamp((int) -Math.floor(Math.log10(step) + 1e-9), 0, 10);
        return String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    /** The round number nearest x: 1, 2, 5 or 10 times a power of ten. */
    static double nice(double x) {
        double exp = Math.floor(Math.log10(x));
        double f = x / Math.pow(10, exp);
        double n = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
        return n * Math.pow(10, exp);
    }

    private static int clamp(int v, int lo, int hi) {
        return Math.max(lo, Math.min(hi, v));
    }
}
