package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.fused.AttentionKernel;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

import static dev.jtune.engine.cuda.CudaParityTest.assertClose;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * kernels/flash_wgmma.cu's forward and backward against the cpu reference (double from the same bf16 inputs) and
 * beside flash.cu's mma.sync kernels on the same inputs: paired query heads (4 per key/value head, 2) and unpaired
 * (1, 3), causal and windowed, lengths off the 64-key tiles, a batch, a span past 2,048 (one dK/dV block per query
 * head, fp32 shares), and packed rows (segments with padding, bidirectional groups; CudaPackedAttentionTest's
 * layouts). Outputs start poisoned (NaN), so an element a kernel does not write fails. Bounds: the L2 bound of
 * flash.cu's tests, and per element at most twice flash.cu's own worst error from the reference on the same inputs
 * (both round P, dS and the outputs to bf16; a misplaced tile or row is off by far more). The backward kernels get
 * the reference's lse and delta, so each kernel is compared on its own. Lse is computed in fp32 from the same
 * products: 1e-5, as flash.cu's. The backward also runs with dQ computed in the dK/dV kernel (the experiment
 * {@code -Djtune.cuda.wgmmaDqInDkv}, whichever way the flag is): dQ within the same bounds, dK and dV bit for bit.
 */
@Tag("gpu")
class FlashWgmmaGpuTest {
    private static final Device GPU = Device.cuda(0);

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    @AfterAll
    static void unpoison() {
        CudaBackend.get(0).poisonAllocations(false);
    }

    private FlashWgmmaKernels wgmma;
    private FlashKernels flash;

    @BeforeEach
    void kernels() {
        CudaBackend gpu = CudaBackend.get(0);
        assumeTrue(FlashWgmmaKernels.supports(gpu.compiler().arch(), DType.BF16, 256),
                "wgmma needs Hopper (sm_90); this GPU is " + gpu.compiler().arch());
        wgmma = new FlashWgmmaKernels(gpu.compiler(), gpu.stream());
        flash = new FlashKernels(gpu.compiler(), gpu.stream());
    }

    @Test
    void forwardAndBackwardMatchTheCpuAndTheMmaSyncKernels() {
        long[][] cases = { // B, Hq, Hkv, T, window
                {1, 4, 1, 100, 0},
                {2, 4, 2, 200, 37},
                {1, 3, 1, 130, 0},
                {1, 2, 2, 65, 0},
                {1, 1, 1, 1, 0},
                {1, 4, 1, 1000, 512},
                {1, 2, 1, 2100, 0},
                {1, 4, 1, 64, 1}};
        long seed = 41;
        for (long[] c : cases) {
            check(c, null, null, new Random(seed++), "");
        }
    }

    @Test
    void packedRowsMatchTheCpuAndTheMmaSyncKernels() {
        long seed = Seeds.seed();
        System.out.println("FlashWgmmaGpuTest packed rows seed " + seed);
        Random rnd = new Random(seed);
        long[][] cases = { // B, Hq, Hkv, T, window, groups
                {1, 4, 1, 300, 0, 0},
                {2, 4, 2, 200, 37, 1},
                {2, 3, 1, 130, 0, 1},
                {1, 4, 1, 2100, 0, 0}};
        for (long[] c : cases) {
            try (Scope s = Scope.open("packed layout")) {
                int[][] ids = CudaPackedAttentionTest.layout(rnd, (int) c[0], (int) c[3], c[5] == 1);
                Tensor seg = Tensor.fromArray(ids[0], Shape.of(c[0], c[3]), DType.I32, Device.CPU);
                Tensor grp = c[5] == 1 ? Tensor.fromArray(ids[1], Shape.of(c[0], c[3]), DType.I32, Device.CPU) : null;
                check(c, seg, grp, rnd, (c[5] == 1 ? " packed, groups" : " packed") + " (seed " + seed + ")");
            }
        }
    }

    /**
     * Operands tokens-major ([B, T, H, D] memory viewed as [B, H, T, D], as the projections make them; every operand,
     * or v and the output alone as Gemma's layers pass them) give the heads-major results bit for bit, on both kernel
     * families: only the addressing differs. Cases: paired and unpaired heads, two kv heads, a batch, a window, the
     * split dK/dV (its shares reduced into a tokens-major dV), packed rows. Outputs start poisoned.
     */
    @Test
    void tokensMajorOperandsGiveTheHeadsMajorResultsBitForBit() {
        long seed = Seeds.seed();
        System.out.println("FlashWgmmaGpuTest tokens-major seed " + seed);
        Random rnd = new Random(seed);
        long[][] cases = { // B, Hq, Hkv, T, window, packed
                {1, 4, 1, 300, 0, 0},
                {2, 4, 2, 200, 37, 0},
                {1, 3, 1, 130, 0, 0},
                {1, 2, 1, 2100, 0, 0},
                {2, 4, 2, 150, 0, 1}};
        FlashKernels.Operand[][] layouts = {FlashKernels.Operand.values(), {FlashKernels.Operand.V, FlashKernels.Operand.O}};
        for (long[] c : cases) {
            for (FlashKernels.Operand[] tokens : layouts) {
                String what = "B" + c[0] + " Hq" + c[1] + " Hkv" + c[2] + " T" + c[3] + " window " + c[4] + (c[5] == 1 ? " packed" : "")
                        + ", tokens-major " + Arrays.toString(tokens) + " (seed " + seed + ")";
                try (Scope s = Scope.open(what)) {
                    Shape qs = Shape.of(c[0], c[1], c[3], 256);
                    Shape kvs = Shape.of(c[0], c[2], c[3], 256);
                    Shape rows = Shape.of(c[0], c[1], c[3]);
                    double scale = 1 / Math.sqrt(256) * 1.5;
                    Tensor q = Tensor.randn(qs, DType.F32, GPU, rnd.nextLong()).cast(DType.BF16);
                    Tensor k = Tensor.randn(kvs, DType.F32, GPU, rnd.nextLong()).cast(DType.BF16);
                    Tensor v = Tensor.randn(kvs, DType.F32, GPU, rnd.nextLong()).cast(DType.BF16);
                    Tensor gout = Tensor.randn(qs, DType.F32, GPU, rnd.nextLong()).cast(DType.BF16);
                    Tensor delta = Tensor.randn(rows, DType.F32, GPU, rnd.nextLong());
                    Tensor seg = null;
                    if (c[5] == 1) {
                        int[][] ids = CudaPackedAttentionTest.layout(rnd, (int) c[0], (int) c[3], false);
                        seg = Tensor.fromArray(ids[0], Shape.of(c[0], c[3]), DType.I32, Device.CPU).to(GPU);
                    }
                    Set<FlashKernels.Operand> t = Set.of(tokens);
                    Tensor qt = as(q, t.contains(FlashKernels.Operand.Q));
                    Tensor kt = as(k, t.contains(FlashKernels.Operand.K));
                    Tensor vt = as(v, t.contains(FlashKernels.Operand.V));
                    Tensor gt = as(gout, t.contains(FlashKernels.Operand.O));
                    for (boolean wg : new boolean[] {true, false}) {
                        String family = what + (wg ? ", wgmma" : ", mma.sync");
                        Tensor out = Tensor.empty(qs, DType.BF16, GPU);
                        Tensor lse = Tensor.empty(rows, DType.F32, GPU);
                        Tensor outT = empty(qs, t.contains(FlashKernels.Operand.O));
                        Tensor lseT = Tensor.empty(rows, DType.F32, GPU);
                        Tensor[] g = {Tensor.empty(qs, DType.BF16, GPU), Tensor.empty(kvs, DType.BF16, GPU), Tensor.empty(kvs, DType.BF16, GPU)};
                        Tensor[] gT = {empty(qs, t.contains(FlashKernels.Operand.Q)), empty(kvs, t.contains(FlashKernels.Operand.K)),
                                empty(kvs, t.contains(FlashKernels.Operand.V))};
                        if (wg) {
                            wgmma.forward(q, k, v, seg, null, c[4], scale, out, lse);
                            wgmma.forward(qt, kt, vt, seg, null, c[4], scale, outT, lseT);
                            wgmma.backward(q, k, v, seg, null, gout, lse, delta, c[4], scale, g[0], g[1], g[2], flash);
                            wgmma.backward(qt, kt, vt, seg, null, gt, lse, delta, c[4], scale, gT[0], gT[1], gT[2], flash);
                        } else {
                            flash.forward(q, k, v, seg, null, c[4], scale, out, lse);
                            flash.forward(qt, kt, vt, seg, null, c[4], scale, outT, lseT);
                            flash.backward(q, k, v, seg, null, gout, lse, delta, c[4], scale, g[0], g[1], g[2]);
                            flash.backward(qt, kt, vt, seg, null, gt, lse, delta, c[4], scale, gT[0], gT[1], gT[2]);
                        }
                        assertBitForBit(out, outT, family + ": out");
                        assertBitForBit(lse, lseT, family + ": lse");
                        String[] names = {"dq", "dk", "dv"};
                        for (int i = 0; i < 3; i++) {
                            if (i == 0 && wg && FlashWgmmaKernels.dqInDkv(DType.BF16, 256)) {
                                // dQ summed by L2 reductions in no fixed order: equal up to its bf16 rounding
                                assertClose(g[i].to(Device.CPU), gT[i].to(Device.CPU), 1e-2, family + ": dq (reductions in any order)");
                            } else {
                                assertBitForBit(g[i], gT[i], family + ": " + names[i]);
                            }
                        }
                    }
                }
            }
        }
    }

    /** x as it is (heads-major) or as a tokens-major copy of it. */
    private static Tensor as(Tensor x, boolean tokens) {
        return tokens ? x.transpose(1, 2).contiguous().transpose(1, 2) : x;
    }

    /** A [B, H, T, D] bf16 tensor on the GPU, heads-major or tokens-major. */
    private static Tensor empty(Shape bhtd, boolean tokens) {
        return tokens ? Tensor.empty(Shape.of(bhtd.dim(0), bhtd.dim(2), bhtd.dim(1), bhtd.dim(3)), DType.BF16, GPU).transpose(1, 2)
                : Tensor.empty(bhtd, DType.BF16, GPU);
    }

    private static void assertBitForBit(Tensor expected, Tensor actual, String what) {
        double[] e = expected.toDoubleArray();
        double[] a = actual.toDoubleArray();
        for (int i = 0; i < e.length; i++) {
            if (Double.doubleToLongBits(e[i]) != Double.doubleToLongBits(a[i])) {
                throw new AssertionError(what + ": element " + i + " is " + a[i] + ", heads-major gave " + e[i]);
            }
        }
    }

    private void check(long[] c, Tensor seg, Tensor grp, Random rnd, String label) {
        String what = "B" + c[0] + " Hq" + c[1] + " Hkv" + c[2] + " T" + c[3] + " window " + c[4] + label;
        try (Scope s = Scope.open(what)) {
            Shape qs = Shape.of(c[0], c[1], c[3], 256);
            Shape kvs = Shape.of(c[0], c[2], c[3], 256);
            Shape rows = Shape.of(c[0], c[1], c[3]);
            double scale = 1 / Math.sqrt(256) * 1.5; // peakier than uniform
            Tensor q = Tensor.randn(qs, DType.F32, Device.CPU, rnd.nextLong()).cast(DType.BF16);
            Tensor k = Tensor.randn(kvs, DType.F32, Device.CPU, rnd.nextLong()).cast(DType.BF16);
            Tensor v = Tensor.randn(kvs, DType.F32, Device.CPU, rnd.nextLong()).cast(DType.BF16);
            Tensor gout = Tensor.randn(qs, DType.F32, Device.CPU, rnd.nextLong()).cast(DType.BF16);
            Tensor out = Tensor.empty(qs, DType.BF16, Device.CPU);
            Tensor lse = Tensor.empty(rows, DType.F32, Device.CPU);
            AttentionKernel cpu = CpuBackend.instance().kernels(AttentionKernel.OP);
            cpu.fusedForward(q, k, v, seg, grp, c[4], scale, out, lse);
            Tensor delta = Tensor.empty(rows, DType.F32, Device.CPU);
            cpu.rowDot(gout.reshape(-1, 256), out.reshape(-1, 256), delta.reshape(-1));
            Tensor[] grads = {Tensor.empty(qs, DType.BF16, Device.CPU), Tensor.empty(kvs, DType.BF16, Device.CPU),
                    Tensor.empty(kvs, DType.BF16, Device.CPU)};
            cpu.fusedBackward(q, k, v, seg, grp, gout, lse, delta, c[4], scale, grads[0], grads[1], grads[2]);

            Tensor qg = q.to(GPU);
            Tensor kg = k.to(GPU);
            Tensor vg = v.to(GPU);
            Tensor sg = seg == null ? null : seg.to(GPU);
            Tensor gg = grp == null ? null : grp.to(GPU);
            Tensor outW = Tensor.empty(qs, DType.BF16, GPU);
            Tensor lseW = Tensor.empty(rows, DType.F32, GPU);
            wgmma.forward(qg, kg, vg, sg, gg, c[4], scale, outW, lseW);
            Tensor outM = Tensor.empty(qs, DType.BF16, GPU);
            Tensor lseM = Tensor.empty(rows, DType.F32, GPU);
            flash.forward(qg, kg, vg, sg, gg, c[4], scale, outM, lseM);
            compare(what + ": out", out, outW, outM);
            assertClose(lse, lseW.to(Device.CPU), 1e-5, what + ": lse");

            Tensor go = gout.to(GPU);
            Tensor lg = lse.to(GPU);
            Tensor dg = delta.to(GPU);
            Tensor[] w = {Tensor.empty(qs, DType.BF16, GPU), Tensor.empty(kvs, DType.BF16, GPU), Tensor.empty(kvs, DType.BF16, GPU)};
            wgmma.backward(qg, kg, vg, sg, gg, go, lg, dg, c[4], scale, w[0], w[1], w[2], flash);
            Tensor[] m = {Tensor.empty(qs, DType.BF16, GPU), Tensor.empty(kvs, DType.BF16, GPU), Tensor.empty(kvs, DType.BF16, GPU)};
            flash.backward(qg, kg, vg, sg, gg, go, lg, dg, c[4], scale, m[0], m[1], m[2]);
            String[] names = {"dq", "dk", "dv"};
            for (int i = 0; i < 3; i++) {
                compare(what + ": " + names[i], grads[i], w[i], m[i]);
            }
            if (FlashWgmmaKernels.dqInDkvAvailable()) {
                // dQ from the dK/dV kernel's own dS (the experiment, whatever the flag): dK and dV are the same
                // arithmetic, bit for bit; dQ within the bounds of the dQ kernel's
                boolean flagged = FlashWgmmaKernels.dqInDkv(DType.BF16, 256);
                Tensor[] x = {Tensor.empty(qs, DType.BF16, GPU), Tensor.empty(kvs, DType.BF16, GPU), Tensor.empty(kvs, DType.BF16, GPU)};
                wgmma.backward(qg, kg, vg, sg, gg, go, lg, dg, c[4], scale, x[0], x[1], x[2], flash, !flagged);
                Tensor[] inKernel = flagged ? w : x;
                Tensor[] apart = flagged ? x : w;
                compare(what + ": dq from dK/dV", grads[0], inKernel[0], m[0]);
                assertBitForBit(apart[1], inKernel[1], what + ": dk beside dQ from dK/dV");
                assertBitForBit(apart[2], inKernel[2], what + ": dv beside dQ from dK/dV");
            }
        }
    }

    /**
     * wgmma's result within the L2 bound of bf16 (plus twice mma.sync's own L2 error: where the exact result is 0, as
     * dq of a single key whose dS = P (dP - delta) vanishes, both kernels return rounding noise of the cpu's) and per
     * element within twice mma.sync's worst error.
     */
    private static void compare(String what, Tensor reference, Tensor wgmma, Tensor mmaSync) {
        Tensor w = wgmma.to(Device.CPU);
        Tensor m = mmaSync.to(Device.CPU);
        double norm = l2(reference, null);
        double err = l2(reference, w);
        double mmaErr = l2(reference, m);
        assertTrue(err <= 2e-2 * norm + 2 * mmaErr, what + ": L2 error " + err + " against |reference| " + norm + " and mma.sync's error " + mmaErr);
        double wgmmaWorst = worst(reference, w);
        double mmaWorst = worst(reference, m);
        System.out.printf(Locale.ROOT, "wgmma %s: worst |x - cpu| %.3g (mma.sync kernel %.3g)%n", what, wgmmaWorst, mmaWorst);
        assertTrue(wgmmaWorst <= 2 * mmaWorst + 1e-6, what + ": worst element error " + wgmmaWorst
                + " is more than twice the mma.sync kernel's " + mmaWorst);
    }

    /** ||x - ref|| (||ref|| for a null x), finite elements only. */
    private static double l2(Tensor ref, Tensor x) {
        double[] r = ref.toDoubleArray();
        double[] v = x == null ? new double[r.length] : x.toDoubleArray();
        double sum = 0;
        for (int i = 0; i < r.length; i++) {
            if (Double.isFinite(r[i]) && Double.isFinite(v[i])) {
                sum += (v[i] - r[i]) * (v[i] - r[i]);
            }
        }
        return Math.sqrt(sum);
    }

    private static double worst(Tensor ref, Tensor x) {
        double[] r = ref.toDoubleArray();
        double[] v = x.toDoubleArray();
        double w = 0;
        for (int i = 0; i < r.length; i++) {
            if (Double.isNaN(v[i]) != Double.isNaN(r[i])) {
                return Double.POSITIVE_INFINITY;
            }
            if (!Double.isNaN(r[i]) && !(Double.isInfinite(r[i]) && r[i] == v[i])) {
                w = Math.max(w, Math.abs(v[i] - r[i]));
            }
        }
        return w;
    }
}
