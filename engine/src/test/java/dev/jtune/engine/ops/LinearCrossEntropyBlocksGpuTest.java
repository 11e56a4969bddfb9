package dev.jtune.engine.ops;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link CrossEntropy#linear}'s backward by vocabulary slices on the GPU (cuBLASLt's accumulating GEMMs into the
 * slice and hidden accumulators, the loss kernel's column offset, the casts into the result) against the cpu's F32 one
 * pass, and the default slicing against the GPU's own one pass. Tolerances are those CudaOpsBackwardParityTest gives
 * this op (relative RMS error: F32 1e-4, BF16 3e-2). Allocations are poisoned so unwritten elements fail.
 */
@Tag("gpu")
class LinearCrossEntropyBlocksGpuTest {
    private static final Device GPU = Device.cuda(0);

    private final Random rnd = Seeds.random();
    private Scope scope;

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    @BeforeEach
    void open() {
        scope = Scope.open("linear cross-entropy blocks");
    }

    @AfterEach
    void close() {
        scope.close();
    }

    private record Result(double loss, double[] gh, double[] gw) {
    }

    private Tensor labels(int n, int vocab) {
        return Tensor.fromArray(RandomLabels.firstCounted(rnd, n, vocab), Shape.of(n), DType.I32, Device.CPU);
    }

    private static Result run(Tensor h0, Tensor w0, Tensor labels, DType dtype, Device device, int chunkRows, long sliceColumns,
                              double softcap) {
        Tensor h = h0.cast(dtype).to(device).detach().requiresGrad(true);
        Tensor w = w0.cast(dtype).to(device).detach().requiresGrad(true);
        Tensor loss = CrossEntropy.linear(h, w, labels.to(device), chunkRows, sliceColumns, 0, softcap);
        loss.backward();
        return new Result(loss.item(), h.grad().cast(DType.F32).toDoubleArray(), w.grad().cast(DType.F32).toDoubleArray());
    }

    /** 300 tokens in chunks of 64 (the last 44), 5,000 entries in slices of 768 (the last 392), capped or not. */
    @Test
    void slicedBackwardMatchesTheCpu() {
        int n = 300;
        int vocab = 5000;
        Tensor h = Tensor.uniform(Shape.of(n, 64), DType.F32, Device.CPU, rnd.nextLong(), -1, 1);
        Tensor w = Tensor.uniform(Shape.of(vocab, 64), DType.F32, Device.CPU, rnd.nextLong(), -1, 1);
        Tensor labels = labels(n, vocab);
        for (double softcap : new double[] {0, 5.0}) {
            Tensor hs = softcap > 0 ? h.scale(4) : h;
            Result ref = run(hs, w, labels, DType.F32, Device.CPU, 0, vocab, softcap);
            for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
                double tol = dtype == DType.F32 ? 1e-4 : 3e-2;
                Result gpu = run(hs, w, labels, dtype, GPU, 64, 768, softcap);
                String what = dtype + " softcap " + softcap;
                assertEquals(ref.loss, gpu.loss, tol * Math.abs(ref.loss), what + ": loss");
                assertRelative(ref.gh, gpu.gh, tol, what + ": dL/dhidden");
                assertRelative(ref.gw, gpu.gw, tol, what + ": dL/dweight");
            }
        }
    }

    /**
     * The default blocks of a 40,000 x 640 head at 4,096 tokens (LinearCrossEntropyBlocksTest checks them): bf16 two
     * slices of 20,224, F32 three of 13,568, all tokens in one chunk.
     */
    @Test
    void defaultSlicesMatchTheOnePassOnTheGpu() {
        int n = 4096;
        int vocab = 40_000;
        Tensor h = Tensor.uniform(Shape.of(n, 640), DType.F32, Device.CPU, rnd.nextLong(), -1, 1);
        Tensor w = Tensor.uniform(Shape.of(vocab, 640), DType.F32, Device.CPU, rnd.nextLong(), -0.1, 0.1);
        Tensor labels = labels(n, vocab);
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            double tol = dtype == DType.F32 ? 1e-4 : 3e-2;
            Result onePass = run(h, w, labels, dtype, GPU, 0, vocab, 0);
            Result sliced = run(h, w, labels, dtype, GPU, 0, 0, 0);
            assertEquals(onePass.loss, sliced.loss, tol * Math.abs(onePass.loss), dtype + ": loss (the same forward)");
            assertRelative(onePass.gh, sliced.gh, tol, dtype + ": dL/dhidden");
            assertRelative(onePass.gw, sliced.gw, tol, dtype + ": dL/dweight");
        }
    }

    /** Relative RMS error, as CudaParityTest measures it; NaN anywhere (an unwritten element) fails. */
    private static void assertRelative(double[] ref, double[] got, double tol, String what) {
        assertEquals(ref.length, got.length, what);
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            assertTrue(Double.isFinite(got[i]), what + ": element " + i + " is " + got[i] + " (unwritten?)");
            num += (got[i] - ref[i]) * (got[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        double rel = Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
        assertTrue(rel <= tol, what + ": relative error " + rel + " > " + tol);
    }
}
