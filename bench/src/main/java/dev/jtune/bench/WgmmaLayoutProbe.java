package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.WgmmaKernels;

import java.util.Locale;

/**
 * Which wgmma shared-memory layouts are right, on the GPU: the K-major probe (Q K^T's operands), the TMA paths
 * (128-byte swizzled boxes: K-major, and N-major with both assignments of its box distances), then, last since a wrong
 * one may fault, the no-swizzle N-major probe (P V's V) with both assignments of its core-matrix distances (128 bytes
 * along N, 1024 along K) to the descriptor's leading and stride byte offsets; each against the cpu product of the
 * same bf16 values. Prints each one's largest
 * error relative to the output's largest magnitude (fp32 accumulation: ~1e-6; a wrong layout: order 1).
 * Usage: {@code WgmmaLayoutProbe [seed=1]}.
 */
public final class WgmmaLayoutProbe {
    private WgmmaLayoutProbe() {
    }

    public static void main(String[] args) {
        long seed = args.length > 0 ? Long.parseLong(args[0]) : 1;
        CudaBackend gpu = CudaBackend.get(0);
        Device d = gpu.device();
        int m = WgmmaKernels.PROBE_ROWS;
        int k = WgmmaKernels.PROBE_K;
        WgmmaKernels kernels = new WgmmaKernels(gpu.compiler(), gpu.stream());
        try (Scope s = Scope.open("wgmma layout probe")) {
            Tensor a = Tensor.randn(Shape.of(m, k), DType.BF16, d, seed);
            Tensor bt = Tensor.randn(Shape.of(m, k), DType.BF16, d, seed + 1); // B^T: rows of K (K-major)
            Tensor b = bt.transpose(0, 1).contiguous(); // B [K, N], N contiguous (N-major)
            double[] ref = product(a.toDoubleArray(), b.toDoubleArray(), m, m, k);
            double scale = largest(ref);
            Tensor c = Tensor.full(Shape.of(m, m), Double.NaN, DType.F32, d);
            kernels.probe(a, bt, c);
            report("K-major (Q K^T)", c.toDoubleArray(), ref, scale);
            Tensor ct = Tensor.full(Shape.of(m, m), Double.NaN, DType.F32, d);
            kernels.probeTma(a, bt, ct);
            report("TMA, 128-byte swizzle, K-major (Q K^T)", ct.toDoubleArray(), ref, scale);
            tmaNMajor(kernels, d, seed + 2);
            // last: a wrong assignment may read outside the tile and fault, which ends the process (an illegal address
            // leaves the context unusable); on an H100 {128, 1024} faulted, so it goes last
            System.out.println("wgmma no-swizzle N-major next: a wrong assignment may end the process with an illegal address");
            int[][] assignments = {{1024, 128}, {128, 1024}};
            for (int[] lboSbo : assignments) {
                Tensor cn = Tensor.full(Shape.of(m, m), Double.NaN, DType.F32, d);
                kernels.probeNMajor(a, b, cn, lboSbo[0], lboSbo[1]);
                report("N-major (P V), LBO " + lboSbo[0] + " SBO " + lboSbo[1], cn.toDoubleArray(), ref, scale);
            }
        }
    }

    /** The TMA N-major probe (P V's shape, 64 x 256) with both assignments of 8192 (along N) and 1024 (along K). */
    private static void tmaNMajor(WgmmaKernels kernels, Device d, long seed) {
        int m = WgmmaKernels.PROBE_ROWS;
        int k = WgmmaKernels.PROBE_TMA_K;
        int n = WgmmaKernels.PROBE_N;
        Tensor a = Tensor.randn(Shape.of(m, k), DType.BF16, d, seed);
        Tensor b = Tensor.randn(Shape.of(k, n), DType.BF16, d, seed + 1);
        double[] ref = product(a.toDoubleArray(), b.toDoubleArray(), m, n, k);
        double scale = largest(ref);
        for (int[] lboSbo : new int[][] {{8192, 1024}, {1024, 8192}}) {
            Tensor c = Tensor.full(Shape.of(m, n), Double.NaN, DType.F32, d);
            kernels.probeTmaNMajor(a, b, c, lboSbo[0], lboSbo[1]);
            report("TMA, 128-byte swizzle, N-major (P V), LBO " + lboSbo[0] + " SBO " + lboSbo[1], c.toDoubleArray(), ref, scale);
        }
    }

    /** a [m, k] b [k, n] in double, both row-major. */
    private static double[] product(double[] a, double[] b, int m, int n, int k) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int x = 0; x < k; x++) {
                    sum += a[i * k + x] * b[x * n + j];
                }
                c[i * n + j] = sum;
            }
        }
        return c;
    }

    private static double largest(double[] v) {
        double m = 0;
        for (double x : v) {
            m = Math.max(m, Math.abs(x));
        }
        return m;
    }

    private static void report(String what, double[] got, double[] ref, double scale) {
        double worst = 0;
        for (int i = 0; i < ref.length; i++) {
            double e = Double.isNaN(got[i]) ? Double.POSITIVE_INFINITY : Math.abs(got[i] - ref[i]);
            worst = Math.max(worst, e);
        }
        System.out.printf(Locale.ROOT, "wgmma %s: largest error %.3g of the largest |C| %.3g (%s)%n", what, worst / scale, scale,
                worst / scale < 1e-4 ? "right" : "WRONG");
    }
}
