package dev.jtune.engine.cpu;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.AttentionKernel;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionSpec;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cpu reference of the fused attention kernels against the blocked attention op (which the finite-difference
 * checks cover), in F64: forward output, the log-sum-exp, and the three gradients.
 */
class CpuFusedAttentionTest {
    private static final Device CPU = Device.CPU;

    @Test
    void referenceEqualsTheBlockedAttentionOpWithItsGradients() {
        long[][] cases = { // B, Hq, Hkv, T, D, window, query block of the blocked op
                {1, 4, 1, 37, 16, 0, 8},
                {2, 4, 2, 50, 8, 7, 16},
                {1, 2, 2, 1, 4, 0, 4},
                {1, 3, 1, 29, 12, 29, 5},
                {2, 1, 1, 40, 8, 1, 64}};
        long seed = 11;
        for (long[] c : cases) {
            try (Scope s = Scope.open("case")) {
                Shape qs = Shape.of(c[0], c[1], c[3], c[4]);
                Shape kvs = Shape.of(c[0], c[2], c[3], c[4]);
                double scale = 1 / Math.sqrt(c[4]);
                Tensor q = Tensor.randn(qs, DType.F64, CPU, seed++).requiresGrad(true);
                Tensor k = Tensor.randn(kvs, DType.F64, CPU, seed++).requiresGrad(true);
                Tensor v = Tensor.randn(kvs, DType.F64, CPU, seed++).requiresGrad(true);
                Tensor g = Tensor.randn(qs, DType.F64, CPU, seed++);
                assertFalse(CpuBackend.instance().kernels(AttentionKernel.OP).hasFused(DType.F64, c[4]), "the cpu runs the blocked op");
                Tensor blocked = Attention.causal(q, k, v, new AttentionSpec(c[5], scale, (int) c[6]));
                blocked.backward(g);

                Tensor out = Tensor.empty(qs, DType.F64, CPU);
                Tensor lse = Tensor.empty(Shape.of(c[0], c[1], c[3]), DType.F64, CPU);
                CpuBackend.instance().kernels(AttentionKernel.OP).fusedForward(q.detach(), k.detach(), v.detach(), c[5], scale, out, lse);
                assertClose(blocked, out, "out");
                Tensor delta = Tensor.empty(lse.shape(), DType.F64, CPU);
                CpuBackend.instance().kernels(AttentionKernel.OP).rowDot(g.reshape(-1, c[4]), out.reshape(-1, c[4]), delta.reshape(-1));
                Tensor gq = Tensor.empty(qs, DType.F64, CPU);
                Tensor gk = Tensor.empty(kvs, DType.F64, CPU);
                Tensor gv = Tensor.empty(kvs, DType.F64, CPU);
                CpuBackend.instance().kernels(AttentionKernel.OP).fusedBackward(q.detach(), k.detach(), v.detach(), g, lse, delta, c[5], scale, gq, gk, gv);
                assertClose(q.grad(), gq, "dq");
                assertClose(k.grad(), gk, "dk");
                assertClose(v.grad(), gv, "dv");
                // lse against its definition for the last query of head 0 (it sees keys max(0, T - window)..T-1)
                double[] qd = q.detach().toDoubleArray();
                double[] kd = k.detach().toDoubleArray();
                int t = (int) c[3];
                int d = (int) c[4];
                int i = t - 1;
                double sum = 0;
                for (int j = c[5] > 0 ? (int) Math.max(0, i - c[5] + 1) : 0; j <= i; j++) {
                    double dot = 0;
                    for (int x = 0; x < d; x++) {
                        dot += qd[i * d + x] * kd[j * d + x];
                    }
                    sum += Math.exp(scale * dot);
                }
                assertEquals(Math.log(sum), lse.toDoubleArray()[i], 1e-12, "lse of the last query");
            }
        }
    }

    /**
     * The attention op's fused path (its delta, alignment and gradient plumbing around the kernels, which runs on the
     * GPU) routed through the cpu reference by {@code jtune.cpu.fusedAttention}: the same outputs and gradients as the
     * blocked op, in F64.
     */
    @Test
    void theOpsFusedPathEqualsItsBlockedPath() {
        long[][] cases = {{2, 4, 2, 23, 8, 0}, {1, 3, 1, 30, 4, 6}}; // B, Hq, Hkv, T, D, window
        long seed = 41;
        try {
            for (long[] c : cases) {
                try (Scope s = Scope.open("case")) {
                    Shape qs = Shape.of(c[0], c[1], c[3], c[4]);
                    Shape kvs = Shape.of(c[0], c[2], c[3], c[4]);
                    AttentionSpec spec = new AttentionSpec(c[5], 1 / Math.sqrt(c[4]), 7);
                    Tensor q = Tensor.randn(qs, DType.F64, CPU, seed++).requiresGrad(true);
                    Tensor k = Tensor.randn(kvs, DType.F64, CPU, seed++).requiresGrad(true);
                    Tensor v = Tensor.randn(kvs, DType.F64, CPU, seed++).requiresGrad(true);
                    Tensor g = Tensor.randn(qs, DType.F64, CPU, seed++);
                    Tensor blocked = Attention.causal(q, k, v, spec);
                    blocked.backward(g);
                    Tensor[] blockedGrads = {q.grad().copy(), k.grad().copy(), v.grad().copy()};
                    q.zeroGrad();
                    k.zeroGrad();
                    v.zeroGrad();
                    System.setProperty("jtune.cpu.fusedAttention", "true");
                    assertTrue(CpuBackend.instance().kernels(AttentionKernel.OP).hasFused(DType.F64, c[4]));
                    Tensor fused = Attention.causal(q, k, v, spec);
                    fused.backward(g);
                    System.clearProperty("jtune.cpu.fusedAttention");
                    assertClose(blocked, fused, "out");
                    assertClose(blockedGrads[0], q.grad(), "dq");
                    assertClose(blockedGrads[1], k.grad(), "dk");
                    assertClose(blockedGrads[2], v.grad(), "dv");
                }
            }
        } finally {
            System.clearProperty("jtune.cpu.fusedAttention");
        }
    }

    /**
     * The op's fused path (routed through the cpu reference) over operands as Gemma's layers make them: q, k and v
     * [B, T, H, D] tensors viewed as [B, H, T, D], the output gradient through o_proj's [B T, H D] rows. The output is
     * such a view too (its [B, T, H, D] transpose contiguous: o_proj reads it without a copy), and output and gradients
     * equal those of contiguous operands bit for bit (the reference's arithmetic does not see the layout).
     */
    @Test
    void theOpsFusedPathTakesTokensMajorOperandsAsTheyLie() {
        long[][] cases = {{2, 4, 2, 23, 8, 0}, {1, 3, 1, 30, 4, 6}, {1, 4, 1, 17, 8, 0}}; // B, Hq, Hkv, T, D, window
        long seed = 71;
        try {
            System.setProperty("jtune.cpu.fusedAttention", "true");
            for (long[] c : cases) {
                try (Scope s = Scope.open("case")) {
                    AttentionSpec spec = new AttentionSpec(c[5], 1 / Math.sqrt(c[4]), 7);
                    Tensor q = Tensor.randn(Shape.of(c[0], c[3], c[1], c[4]), DType.F64, CPU, seed++).requiresGrad(true);
                    Tensor k = Tensor.randn(Shape.of(c[0], c[3], c[2], c[4]), DType.F64, CPU, seed++).requiresGrad(true);
                    Tensor v = Tensor.randn(Shape.of(c[0], c[3], c[2], c[4]), DType.F64, CPU, seed++).requiresGrad(true);
                    Tensor g = Tensor.randn(Shape.of(c[0] * c[3], c[1] * c[4]), DType.F64, CPU, seed++);
                    Tensor out = Attention.causal(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), spec);
                    assertTrue(AttentionKernel.tokensMajor(out) || c[1] == 1, "the output is a [B, T, H, D] tensor viewed as [B, H, T, D]");
                    Tensor rows = out.transpose(1, 2).contiguous();
                    assertEquals(out.address(), rows.address(), "o_proj's rows are a view of the output, not a copy");
                    rows.reshape(c[0] * c[3], c[1] * c[4]).backward(g);

                    Tensor qc = q.detach().transpose(1, 2).contiguous().requiresGrad(true);
                    Tensor kc = k.detach().transpose(1, 2).contiguous().requiresGrad(true);
                    Tensor vc = v.detach().transpose(1, 2).contiguous().requiresGrad(true);
                    Tensor outC = Attention.causal(qc, kc, vc, spec);
                    assertTrue(outC.transpose(1, 2).isContiguous(), "contiguous operands give a tokens-major output too");
                    outC.transpose(1, 2).reshape(c[0] * c[3], c[1] * c[4]).backward(g);
                    assertSame(outC, out, "out");
                    assertSame(qc.grad().transpose(1, 2), q.grad(), "dq");
                    assertSame(kc.grad().transpose(1, 2), k.grad(), "dk");
                    assertSame(vc.grad().transpose(1, 2), v.grad(), "dv");
                }
            }
        } finally {
            System.clearProperty("jtune.cpu.fusedAttention");
        }
    }

    private static void assertSame(Tensor expected, Tensor actual, String what) {
        assertTrue(Arrays.equals(expected.toDoubleArray(), actual.toDoubleArray()), what + ": bit for bit");
    }

    private static void assertClose(Tensor ref, Tensor x, String what) {
        double[] r = ref.toDoubleArray();
        double[] v = x.toDoubleArray();
        assertEquals(r.length, v.length, what);
        for (int i = 0; i < r.length; i++) {
            assertTrue(Math.abs(r[i] - v[i]) <= 1e-12 * Math.max(1, Math.abs(r[i])), what + "[" + i + "]: " + v[i] + " vs " + r[i]);
        }
    }
}
