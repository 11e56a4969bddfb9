package dev.jtune.engine.fused;

import dev.jtune.engine.optim.FlatLayout;
import dev.jtune.engine.quant.DynamicMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * How an fp32 implementation of the 8-bit AdamW step (the cuda kernel, the host update) is held to the double
 * reference ({@link AdamW8bitKernel}'s cpu backend) when both start a step from the same state: a requantized code may
 * differ by one where the moment lies within fp32 error of a decision midpoint; every such code is checked to be one
 * step away with the reference's double value within {@link #WINDOW} of the midpoint between the two, and their count
 * is bounded by {@link #MAX_MISMATCH_SHARE}. Shared by the tests of both implementations.
 */
public final class AdamW8bitParity {
    /**
     * The fp32 error allowed in a normalized moment (x = m / absmax, |x| <= 1): its few roundings of terms about as
     * large as the block's absmax come to some 3e-7; the window is wider still, and far narrower than the codes' gaps
     * away from zero.
     */
    public static final double WINDOW = 2e-6;
    /** The share of codes that may differ (each justified as above): fp32 error puts far fewer near a midpoint. */
    public static final double MAX_MISMATCH_SHARE = 1e-3;
    /**
     * A block maximum's fp32 error relative to its moment's larger term: the decoded moment, the two products (with
     * beta and 1 - beta rounded to fp32, 2.6e-8 and 1.5e-8 off) and the sum, each within half an ulp (6e-8), come to
     * under 4e-7.
     */
    public static final double TERM_ERROR = 1e-6;
    private static final int BLOCK = AdamW8bitKernel.BLOCK;

    private AdamW8bitParity() {
    }

    /** The codes and block maxima before a step, and the reference's after it. */
    public record Codes(byte[] m, byte[] v, float[] absmaxM, float[] absmaxV) {
        public static Codes of(AdamW8bitKernel.State s) {
            return new Codes(s.m().toByteArray(), s.v().toByteArray(), s.absmaxM().toFloatArray(), s.absmaxV().toFloatArray());
        }
    }

    /**
     * Compares the codes {@code got} against the reference's {@code ref}, both after one step from {@code before}
     * with gradients {@code grad} (non-finite ones leave the moments 0) times {@code gradScale}, betas 0.9 and
     * 0.999; the block maxima within 1e-5 relative. Returns the number of codes that differ (each justified); adds the
     * number compared to {@code counted[0]}.
     */
    public static long compare(FlatLayout layout, double[] grad, double gradScale, Codes before, Codes ref, Codes got, long[] counted,
                               String what) {
        double[][] terms = termMagnitudes(layout, grad, gradScale, before, ref.absmaxM().length);
        for (int b = 0; b < ref.absmaxM().length; b++) {
            assertEquals(ref.absmaxM()[b], got.absmaxM()[b], 1e-5 * ref.absmaxM()[b] + TERM_ERROR * terms[0][b], what + " absmax m block " + b);
            assertEquals(ref.absmaxV()[b], got.absmaxV()[b], 1e-5 * ref.absmaxV()[b] + TERM_ERROR * terms[1][b], what + " absmax v block " + b);
        }
        long mismatches = 0;
        for (FlatLayout.Entry e : layout.entries()) {
            for (long i = e.offset(); i < e.end(); i++) {
                int k = (int) i;
                int b = k / BLOCK;
                double gi = Double.isFinite(grad[k]) ? grad[k] * gradScale : Double.NaN;
                boolean ok = !Double.isNaN(gi);
                double m = ok ? 0.9 * DynamicMap.SIGNED.value(before.m()[k] & 0xFF) * before.absmaxM()[b] + 0.1 * gi : 0;
                double v = ok ? 0.999 * DynamicMap.UNSIGNED.value(before.v()[k] & 0xFF) * before.absmaxV()[b] + 0.001 * gi * gi : 0;
                counted[0] += 2;
                if (ref.m()[k] != got.m()[k]) {
                    mismatches++;
                    justify(DynamicMap.SIGNED, m / ref.absmaxM()[b], ref.m()[k] & 0xFF, got.m()[k] & 0xFF, what + " m code " + k);
                }
                if (ref.v()[k] != got.v()[k]) {
                    mismatches++;
                    justify(DynamicMap.UNSIGNED, v / ref.absmaxV()[b], ref.v()[k] & 0xFF, got.v()[k] & 0xFF, what + " v code " + k);
                }
            }
        }
        return mismatches;
    }

    /**
     * Per block, the largest magnitude among the two terms of each new moment (beta times the old one, (1 - beta) times
     * the gradient or its square), m's in [0], v's in [1]. Where they nearly cancel, a moment's fp32 error is a few
     * roundings of the terms, not of the result: a block whose one valid element has m = 0.9 absmax + 0.1 g near 0
     * drew 1.2e-4 relative (seed 23612025557390).
     */
    private static double[][] termMagnitudes(FlatLayout layout, double[] grad, double gradScale, Codes before, int blocks) {
        double[][] t = new double[2][blocks];
        for (FlatLayout.Entry e : layout.entries()) {
            for (long i = e.offset(); i < e.end(); i++) {
                int k = (int) i;
                int b = k / BLOCK;
                if (!Double.isFinite(grad[k])) {
                    continue;
                }
                double g = grad[k] * gradScale;
                double m = Math.abs(DynamicMap.SIGNED.value(before.m()[k] & 0xFF) * before.absmaxM()[b]);
                double v = DynamicMap.UNSIGNED.value(before.v()[k] & 0xFF) * before.absmaxV()[b];
                t[0][b] = Math.max(t[0][b], Math.max(0.9 * m, 0.1 * Math.abs(g)));
                t[1][b] = Math.max(t[1][b], Math.max(0.999 * v, 0.001 * g * g));
            }
        }
        return t;
    }

    /** The bound on all the steps' differing codes together. */
    public static void assertFewMismatches(long mismatches, long codes, String what) {
        System.out.printf("adamw8bit %s: %d of %d codes differ by one step at a midpoint%n", what, mismatches, codes);
        assertTrue(mismatches <= MAX_MISMATCH_SHARE * codes, what + ": " + mismatches + " of " + codes + " codes differ");
    }

    /** A code chosen differently: one step away, with the reference's value within WINDOW of their midpoint. */
    private static void justify(DynamicMap map, double x, int ref, int got, String what) {
        assertEquals(1, Math.abs(ref - got), what + ": reference code " + ref + ", fp32 " + got + " for x = " + x);
        int lo = Math.min(ref, got);
        double mid = (double) ((map.value(lo) + map.value(lo + 1)) * 0.5f);
        assertTrue(Math.abs(x - mid) <= WINDOW, what + ": codes " + ref + " / " + got + " but x = " + x + " is " + Math.abs(x - mid)
                + " from their midpoint " + mid);
    }
}
