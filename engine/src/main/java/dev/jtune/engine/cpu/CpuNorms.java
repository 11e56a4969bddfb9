package dev.jtune.engine.cpu;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuLoops.Flat;

import java.util.stream.IntStream;

/** RMSNorm over the last axis (Gemma's {@code 1 + w} variant when {@code offsetOne}) and its backward. */
final class CpuNorms {
    private CpuNorms() {
    }

    /**
     * {@code out = x * rstd * g} with {@code g = offsetOne ? 1 + w : w}. rstd is computed in double and stored in
     * rstd's dtype (F32, or F64 next to F64 x); out uses the double value, so it is rounded only once. Rows run in
     * parallel; each is read whole before it is written, so out may be x.
     */
    static void rmsNorm(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor out, Tensor rstd) {
        int d = CpuLoops.lastDim("rmsNorm", x);
        long n = x.numel() / Math.max(d, 1);
        double[] g = gains(weight, offsetOne, d);
        Flat xs = Flat.of(x);
        Flat os = Flat.of(out);
        Flat rs = Flat.of(rstd);
        CpuLoops.rows(n, i -> {
            double[] row = xs.read(i * d, new double[d]);
            double ss = 0;
            for (double v : row) {
                ss += v * v;
            }
            double r = 1 / Math.sqrt(ss / d + eps);
            rs.set(i, r);
            for (int j = 0; j < d; j++) {
                row[j] = row[j] * r * g[j];
            }
            os.write(i * d, row);
        });
    }

    /**
     * With {@code y_j = x_j r g_j} and {@code r = (mean(x^2) + eps)^-1/2}:
     * {@code gradX_j = r (g_j gy_j - x_j r^2 sum_k(gy_k g_k x_k) / D)} and
     * {@code gradWeight_j = sum_i gy_ij x_ij r_i} (ascending i), r being the saved rstd. gradWeight is computed
     * first and every row of gradX from a whole-row read, so no input is read after it could have been written.
     */
    static void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradX,
                                Tensor gradWeight) {
        int d = CpuLoops.lastDim("rmsNormBackward", x);
        long n = x.numel() / Math.max(d, 1);
        double[] g = gains(weight, offsetOne, d);
        Flat xs = Flat.of(x);
        Flat gys = Flat.of(gradOut);
        Flat rs = Flat.of(rstd);
        if (gradWeight != null) {
            Flat gw = Flat.of(gradWeight);
            double[] r = rs.read(0, new double[Math.toIntExact(n)]);
            IntStream.range(0, d).parallel().forEach(j -> {
                double s = 0;
                for (int i = 0; i < r.length; i++) {
                    long at = (long) i * d + j;
                    s += gys.get(at) * xs.get(at) * r[i];
                }
                gw.set(j, s);
            });
        }
        Flat gxs = Flat.of(gradX);
        CpuLoops.rows(n, i -> {
            double[] xr = xs.read(i * d, new double[d]);
            double[] gy = gys.read(i * d, new double[d]);
            double r = rs.get(i);
            double dot = 0;
            for (int j = 0; j < d; j++) {
                dot += gy[j] * g[j] * xr[j];
            }
            double c = r * r * dot / d;
            for (int j = 0; j < d; j++) {
                gy[j] = r * (g[j] * gy[j] - xr[j] * c);
            }
            gxs.write(i * d, gy);
        });
    }

    /** The per-column factor {@code offsetOne ? 1 + w : w}, in double. */
    private static double[] gains(Tensor weight, boolean offsetOne, int d) {
        double[] g = Flat.of(weight).read(0, new double[d]);
        if (offsetOne) {
            for (int j = 0; j < d; j++) {
                g[j] += 1;
            }
        }
        return g;
    }
}
