package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kernels/wgmma.cu's probe against the cpu: one warpgroup's wgmma products of bf16 tiles in the no-swizzle core-matrix
 * layout, read through matrix descriptors, equal A B^T computed in double from the same bf16 values, within fp32
 * accumulation over K terms (at most one unit in the last place per addition, truncation allowed: K 2^-23 of the
 * summed magnitudes). A wrong leading or stride byte offset, or a wrong accumulator mapping, misplaces whole 8 x 8
 * blocks and fails by far; so does a wrong swizzle (16-byte chunks misplaced within rows).
 */
@Tag("gpu")
class WgmmaProbeGpuTest {
    /** How a probe fills c from a and b. */
    private interface Probe {
        void run(WgmmaKernels kernels, Tensor a, Tensor b, Tensor c);
    }

    @Test
    void theProbeEqualsTheCpuProduct() {
        check("wgmma probe", WgmmaKernels::probe);
    }

    /** The same product with both tiles copied by TMA into the 128-byte swizzled layout and read through its descriptors. */
    @Test
    void theTmaProbeEqualsTheCpuProduct() {
        check("wgmma tma probe", WgmmaKernels::probeTma);
    }

    /**
     * P V's shape on the TMA path: c [64, 256] = a [64, 64] x b [64, 256], b N-major in 128-byte swizzled boxes with
     * CUTLASS's MN-major offsets (bench WgmmaLayoutProbe prints both assignments).
     */
    @Test
    void theTmaNMajorProbeEqualsTheCpuProduct() {
        CudaBackend gpu = CudaBackend.get(0);
        long seed = Seeds.seed();
        int m = WgmmaKernels.PROBE_ROWS;
        int k = WgmmaKernels.PROBE_TMA_K;
        int n = WgmmaKernels.PROBE_N;
        try (Scope s = Scope.open("wgmma tma n-major probe")) {
            Tensor a = Tensor.randn(Shape.of(m, k), DType.BF16, Device.cuda(0), seed);
            Tensor b = Tensor.randn(Shape.of(k, n), DType.BF16, Device.cuda(0), seed + 1);
            Tensor c = Tensor.full(Shape.of(m, n), Double.NaN, DType.F32, Device.cuda(0));
            new WgmmaKernels(gpu.compiler(), gpu.stream()).probeTmaNMajor(a, b, c, 8192, 1024);
            compare("wgmma tma n-major probe", a.toDoubleArray(), b.toDoubleArray(), (j, x) -> x * n + j, c.toDoubleArray(), m, n, k, seed);
        }
    }

    private static void check(String what, Probe probe) {
        CudaBackend gpu = CudaBackend.get(0);
        long seed = Seeds.seed();
        int m = WgmmaKernels.PROBE_ROWS;
        int k = WgmmaKernels.PROBE_K;
        try (Scope s = Scope.open(what)) {
            Tensor a = Tensor.randn(Shape.of(m, k), DType.BF16, Device.cuda(0), seed);
            Tensor b = Tensor.randn(Shape.of(m, k), DType.BF16, Device.cuda(0), seed + 1);
            Tensor c = Tensor.full(Shape.of(m, m), Double.NaN, DType.F32, Device.cuda(0)); // an unwritten element fails
            probe.run(new WgmmaKernels(gpu.compiler(), gpu.stream()), a, b, c);
            compare(what, a.toDoubleArray(), b.toDoubleArray(), (j, x) -> j * k + x, c.toDoubleArray(), m, m, k, seed);
        }
    }

    /** Where B(x, j) lies in b's values: b^T row-major ({@code j k + x}) or b row-major ({@code x n + j}). */
    private interface BIndex {
        int of(int j, int x);
    }

    /** c [m, n] against a [m, k] B [k, n] in double, each element within fp32 accumulation's bound over k terms. */
    private static void compare(String what, double[] av, double[] bv, BIndex b, double[] cv, int m, int n, int k, long seed) {
        double worst = 0;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                double magnitude = 0;
                for (int x = 0; x < k; x++) {
                    double p = av[i * k + x] * bv[b.of(j, x)];
                    sum += p;
                    magnitude += Math.abs(p);
                }
                double err = Math.abs(cv[i * n + j] - sum);
                double bound = k * Math.scalb(1.0, -23) * magnitude;
                assertTrue(err <= bound, what + ": C[" + i + "][" + j + "] = " + cv[i * n + j] + ", cpu " + sum + " (bound " + bound
                        + ", seed " + seed + ")");
                worst = Math.max(worst, err / Math.max(bound, Double.MIN_NORMAL));
            }
        }
        System.out.printf(java.util.Locale.ROOT, "%s %d x %d x %d: worst error %.3g of its bound%n", what, m, n, k, worst);
    }
}
