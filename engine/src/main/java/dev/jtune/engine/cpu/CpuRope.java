package dev.jtune.engine.cpu;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuLoops.Flat;

/** Rotary position embedding, HF's rotate-half layout, with HF's fp32 frequencies and angles. */
final class CpuRope {
    private CpuRope() {
    }

    /**
     * x [B, H, T, D], positions [B, T]. {@code invFreq[k] = (float) (1 / base^(2k/D))} and
     * {@code angle = (float) pos * invFreq[k]} are fp32 as the contract fixes (fp32 multiply); cos and sin of that
     * float angle, and the rotation, are in double with one rounding on store. Rows (b, h, t) run in parallel and
     * are read whole before they are written, so out may be x.
     */
    static void rope(Tensor x, Tensor positions, double base, double scaling, boolean inverse, Tensor out) {
        long heads = x.dim(1);
        long t = x.dim(2);
        int d = CpuLoops.lastDim("rope", x);
        int half = d / 2;
        float[] invFreq = inverseFrequencies(base, scaling, d);
        Flat xs = Flat.of(x);
        Flat ps = Flat.of(positions);
        Flat os = Flat.of(out);
        CpuLoops.rows(x.numel() / Math.max(d, 1), row -> {
            long b = row / (heads * t);
            float pos = (float) ps.getLong(b * t + row % t);
            double[] v = xs.read(row * d, new double[d]);
            double[] r = new double[d];
            for (int k = 0; k < half; k++) {
                float angle = pos * invFreq[k];
                double c = Math.cos(angle);
                double s = inverse ? -Math.sin(angle) : Math.sin(angle);
                r[k] = v[k] * c - v[k + half] * s;
                r[k + half] = v[k + half] * c + v[k] * s;
            }
            os.write(row * d, r);
        });
    }

    /** {@code (float) (1 / (scaling * base^(2k/D)))} for k < D/2, each rounded once from double. */
    static float[] inverseFrequencies(double base, double scaling, int d) {
        float[] f = new float[d / 2];
        for (int k = 0; k < f.length; k++) {
            f[k] = (float) (1 / (scaling * Math.pow(base, 2.0 * k / d)));
        }
        return f;
    }
}
