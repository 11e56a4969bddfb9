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
 * blocks and fails by far.
 */
@Tag("gpu")
class WgmmaProbeGpuTest {
    @Test
    void theProbeEqualsTheCpuProduct() {
        CudaBackend gpu = CudaBackend.get(0);
        long seed = Seeds.seed();
        int m = WgmmaKernels.PROBE_ROWS;
        int k = WgmmaKernels.PROBE_K;
        try (Scope s = Scope.open("wgmma probe")) {
            Tensor a = Tensor.randn(Shape.of(m, k), DType.BF16, Device.cuda(0), seed);
            Tensor b = Tensor.randn(Shape.of(m, k), DType.BF16, Device.cuda(0), seed + 1);
            Tensor c = Tensor.full(Shape.of(m, m), Double.NaN, DType.F32, Device.cuda(0)); // an unwritten element fails
            new WgmmaKernels(gpu.compiler(), gpu.stream()).probe(a, b, c);
            double[] av = a.toDoubleArray();
            double[] bv = b.toDoubleArray();
            double[] cv = c.toDoubleArray();
            double worst = 0;
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < m; j++) {
                    double sum = 0;
                    double magnitude = 0;
                    for (int x = 0; x < k; x++) {
                        double p = av[i * k + x] * bv[j * k + x];
                        sum += p;
                        magnitude += Math.abs(p);
                    }
                    double err = Math.abs(cv[i * m + j] - sum);
                    double bound = k * Math.scalb(1.0, -23) * magnitude;
                    assertTrue(err <= bound, "C[" + i + "][" + j + "] = " + cv[i * m + j] + ", cpu " + sum + " (bound " + bound + ")");
                    worst = Math.max(worst, err / Math.max(bound, Double.MIN_NORMAL));
                }
            }
            System.out.printf(java.util.Locale.ROOT, "wgmma probe %d x %d x %d: worst error %.3g of its bound%n", m, m, k, worst);
        }
    }
}
