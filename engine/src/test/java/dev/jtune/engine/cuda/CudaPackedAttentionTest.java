package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.fused.AttentionKernel;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionMask;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static dev.jtune.engine.cuda.CudaParityTest.assertClose;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Packed rows on the GPU: kernels/flash.cu's _masked kernels (segments and bidirectional groups) against the cpu
 * reference, forward and both backward kernels, at every head size the kernels take, bf16 and f16, causal and
 * windowed, grouped-query heads, padding, lengths that are not multiples of the 64-row tiles; and the blocked path's
 * masked softmax (kernels/softmax.cu, F32) through the op, forward and gradients. Outputs start poisoned (NaN), so an
 * element a kernel does not write fails; the backward kernels get the reference's lse and delta, so each kernel is
 * compared on its own. The bounds are CudaFlashAttentionTest's (bf16/f16 operands, fp32 accumulation) and
 * CudaOpsBackwardParityTest's F32 one: the masked kernels compute the same sums over fewer keys.
 */
@Tag("gpu")
class CudaPackedAttentionTest {
    private static final Device GPU = Device.cuda(0);

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    @AfterAll
    static void unpoison() {
        CudaBackend.get(0).poisonAllocations(false);
    }

    private static double tol(DType dtype) {
        return dtype == DType.BF16 ? 2e-2 : 4e-3;
    }

    /**
     * Per batch row: samples of random lengths (1 to T/2), then up to 5 tokens of padding (segment -1); with groups,
     * a random run inside some samples shares a group id (distinct per run), the rest -1.
     */
    static int[][] layout(Random rnd, int b, int t, boolean groups) {
        int[] seg = new int[b * t];
        int[] grp = new int[b * t];
        Arrays.fill(seg, -1);
        Arrays.fill(grp, -1);
        int nextGroup = 0;
        for (int r = 0; r < b; r++) {
            int end = t - rnd.nextInt(6);
            int at = 0;
            for (int s = 0; at < end; s++) {
                int n = Math.min(end - at, 1 + rnd.nextInt(Math.max(1, t / 2)));
                Arrays.fill(seg, r * t + at, r * t + at + n, s);
                if (groups && n >= 3 && rnd.nextBoolean()) {
                    int from = at + rnd.nextInt(n - 2);
                    int len = 2 + rnd.nextInt(at + n - from - 1);
                    Arrays.fill(grp, r * t + from, r * t + from + len, nextGroup++);
                }
                at += n;
            }
        }
        return new int[][] {seg, grp};
    }

    @Test
    void maskedKernelsMatchTheCpuReference() {
        long seed = Seeds.seed();
        System.out.println("CudaPackedAttentionTest seed " + seed);
        Random rnd = new Random(seed);
        long[][] cases = { // B, Hq, Hkv, T, D, window, groups
                {1, 4, 1, 300, 256, 0, 0},
                {2, 4, 2, 200, 256, 37, 1},
                {1, 4, 1, 333, 128, 64, 0},
                {2, 2, 2, 150, 128, 0, 1},
                {2, 8, 1, 130, 64, 0, 0},
                {1, 4, 4, 257, 64, 16, 1},
                {1, 4, 4, 257, 32, 100, 0},
                {2, 3, 1, 65, 32, 0, 1},
                {1, 4, 1, 2100, 256, 0, 0}, // spans of 2048 and more: one dK/dV block per query head, shares summed
                {1, 4, 2, 2100, 64, 0, 1}};
        Backend gpu = CudaBackend.get(0);
        Backend cpu = CpuBackend.instance();
        for (DType dtype : new DType[] {DType.BF16, DType.F16}) {
            for (long[] c : cases) {
                int b = (int) c[0];
                int t = (int) c[3];
                int[][] ids = layout(rnd, b, t, c[6] == 1);
                String what = dtype + " B" + c[0] + " Hq" + c[1] + " Hkv" + c[2] + " T" + c[3] + " D" + c[4] + " window " + c[5]
                        + (c[6] == 1 ? " groups" : "") + " (seed " + seed + ")";
                try (Scope s = Scope.open(what)) {
                    Shape qs = Shape.of(c[0], c[1], c[3], c[4]);
                    Shape kvs = Shape.of(c[0], c[2], c[3], c[4]);
                    Shape rows = Shape.of(c[0], c[1], c[3]);
                    double scale = 1 / Math.sqrt(c[4]) * 1.5;
                    Tensor q = Tensor.randn(qs, DType.F32, Device.CPU, rnd.nextLong()).cast(dtype);
                    Tensor k = Tensor.randn(kvs, DType.F32, Device.CPU, rnd.nextLong()).cast(dtype);
                    Tensor v = Tensor.randn(kvs, DType.F32, Device.CPU, rnd.nextLong()).cast(dtype);
                    Tensor g = Tensor.randn(qs, DType.F32, Device.CPU, rnd.nextLong()).cast(dtype);
                    Tensor seg = Tensor.fromArray(ids[0], Shape.of(b, t), DType.I32, Device.CPU);
                    Tensor grp = c[6] == 1 ? Tensor.fromArray(ids[1], Shape.of(b, t), DType.I32, Device.CPU) : null;

                    AttentionKernel ref = cpu.kernels(AttentionKernel.OP);
                    Tensor out = Tensor.empty(qs, dtype, Device.CPU);
                    Tensor lse = Tensor.empty(rows, DType.F32, Device.CPU);
                    ref.fusedForward(q, k, v, seg, grp, c[5], scale, out, lse);
                    Tensor delta = Tensor.empty(rows, DType.F32, Device.CPU);
                    ref.rowDot(g.reshape(-1, c[4]), out.reshape(-1, c[4]), delta.reshape(-1));
                    Tensor gq = Tensor.empty(qs, dtype, Device.CPU);
                    Tensor gk = Tensor.empty(kvs, dtype, Device.CPU);
                    Tensor gv = Tensor.empty(kvs, dtype, Device.CPU);
                    ref.fusedBackward(q, k, v, seg, grp, g, lse, delta, c[5], scale, gq, gk, gv);

                    AttentionKernel kernels = gpu.kernels(AttentionKernel.OP);
                    Tensor[] dev = {q.to(GPU), k.to(GPU), v.to(GPU), g.to(GPU), lse.to(GPU), delta.to(GPU), seg.to(GPU),
                            grp == null ? null : grp.to(GPU)};
                    Tensor outG = Tensor.empty(qs, dtype, GPU);
                    Tensor lseG = Tensor.empty(rows, DType.F32, GPU);
                    kernels.fusedForward(dev[0], dev[1], dev[2], dev[6], dev[7], c[5], scale, outG, lseG);
                    assertClose(out, outG.to(Device.CPU), tol(dtype), what + ": out");
                    assertClose(lse, lseG.to(Device.CPU), 1e-5, what + ": lse");
                    Tensor gqG = Tensor.empty(qs, dtype, GPU);
                    Tensor gkG = Tensor.empty(kvs, dtype, GPU);
                    Tensor gvG = Tensor.empty(kvs, dtype, GPU);
                    kernels.fusedBackward(dev[0], dev[1], dev[2], dev[6], dev[7], dev[3], dev[4], dev[5], c[5], scale, gqG, gkG, gvG);
                    assertClose(gq, gqG.to(Device.CPU), tol(dtype), what + ": dq");
                    assertClose(gk, gkG.to(Device.CPU), tol(dtype), what + ": dk");
                    assertClose(gv, gvG.to(Device.CPU), tol(dtype), what + ": dv");
                    // padding (segment -1) sees nothing: output exactly 0, lse -inf
                    float[] o = outG.to(Device.CPU).cast(DType.F32).toFloatArray();
                    float[] l = lseG.to(Device.CPU).toFloatArray();
                    int d = (int) c[4];
                    for (int bh = 0; bh < c[0] * c[1]; bh++) {
                        int row = (int) (bh / c[1]);
                        for (int i = 0; i < t; i++) {
                            if (ids[0][row * t + i] < 0) {
                                assertTrue(l[bh * t + i] == Float.NEGATIVE_INFINITY, what + ": lse of padding");
                                for (int x = 0; x < d; x++) {
                                    assertTrue(o[(bh * t + i) * d + x] == 0, what + ": output of padding");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /** The op on the GPU in F32 (the blocked path, attention_softmax_masked) against the cpu's, forward and gradients. */
    @Test
    void theBlockedPathTakesTheMaskToo() {
        long seed = Seeds.seed();
        System.out.println("CudaPackedAttentionTest blocked seed " + seed);
        Random rnd = new Random(seed);
        for (boolean groups : new boolean[] {false, true}) {
            for (long window : new long[] {0, 13}) {
                int b = 2;
                int t = 90;
                int[][] ids = layout(rnd, b, t, groups);
                String what = "F32 blocked window " + window + (groups ? " groups" : "") + " (seed " + seed + ")";
                try (Scope s = Scope.open(what)) {
                    AttentionSpec spec = new AttentionSpec(window, 1.0 / 8, 32);
                    Tensor[] in = {Tensor.uniform(Shape.of(b, 4, t, 64), DType.F32, Device.CPU, rnd.nextLong(), -1, 1),
                            Tensor.uniform(Shape.of(b, 2, t, 64), DType.F32, Device.CPU, rnd.nextLong(), -1, 1),
                            Tensor.uniform(Shape.of(b, 2, t, 64), DType.F32, Device.CPU, rnd.nextLong(), -1, 1)};
                    Tensor g = Tensor.randn(Shape.of(b, 4, t, 64), DType.F32, Device.CPU, rnd.nextLong());
                    Tensor seg = Tensor.fromArray(ids[0], Shape.of(b, t), DType.I32, Device.CPU);
                    Tensor grp = groups ? Tensor.fromArray(ids[1], Shape.of(b, t), DType.I32, Device.CPU) : null;
                    Tensor[] ref = new Tensor[3];
                    Tensor[] dev = new Tensor[3];
                    for (int i = 0; i < 3; i++) {
                        ref[i] = in[i].detach().requiresGrad(true);
                        dev[i] = in[i].to(GPU).detach().requiresGrad(true);
                    }
                    Tensor outRef = Attention.causal(ref[0], ref[1], ref[2], spec, new AttentionMask(seg, grp));
                    Tensor outGpu = Attention.causal(dev[0], dev[1], dev[2], spec, new AttentionMask(seg.to(GPU), grp == null ? null : grp.to(GPU)));
                    assertClose(outRef, outGpu.to(Device.CPU), 1e-4, what + ": out");
                    outRef.backward(g);
                    outGpu.backward(g.to(GPU));
                    for (int i = 0; i < 3; i++) {
                        assertClose(ref[i].grad(), dev[i].grad().to(Device.CPU), 1e-4, what + ": gradient of input " + i);
                    }
                }
            }
        }
    }
}
