package dev.jtune.engine.optim.host;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.HostVisible;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.fused.AdamW8bitParity;
import dev.jtune.engine.fused.ParameterTable;
import dev.jtune.engine.optim.FlatLayout;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Random;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The host 8-bit AdamW against the double reference ({@link AdamW8bitKernel}'s cpu backend) step by step, each step
 * starting both from the reference's state, held to the same rule as the cuda kernel ({@link AdamW8bitParity}): block
 * maxima within 1e-5, codes equal but for justified neighbours at midpoints, the fp32 master within two ulps, and the
 * bf16 weights the master rounded once. Also: the split over threads changes no bit, and ranges are whole blocks.
 */
class HostAdamW8bitTest {
    private static final int BLOCK = AdamW8bitKernel.BLOCK;
    private final long seed = Seeds.seed();
    private final Random rnd = new Random(seed);

    /** One side's flat buffers as cpu tensors. */
    private record Side(Tensor master, Tensor grad, AdamW8bitKernel.State state, Tensor weights16) {
        Side copy() {
            return new Side(master.copy(), grad.copy(), new AdamW8bitKernel.State(state.m().copy(), state.absmaxM().copy(), state.v().copy(),
                    state.absmaxV().copy()), weights16 == null ? null : weights16.copy());
        }

        HostAdamW8bit.Buffers buffers(FlatLayout layout) {
            return HostAdamW8bit.Buffers.over(layout, seg(master), seg(state.m()), seg(state.v()), seg(state.absmaxM()), seg(state.absmaxV()),
                    seg(grad), grad.dtype(), weights16 == null ? null : seg(weights16));
        }
    }

    private static MemorySegment seg(Tensor t) {
        return ((HostVisible) TensorInternals.storage(t)).hostSegment();
    }

    @Test
    void followsTheDoubleReferenceStepByStep() {
        int[][] sizes = {{300, 256, 1000, 5, 4097}, {1 << 18, 77}};
        DType[][] types = {{DType.F32, DType.F32}, {DType.BF16, DType.BF16}, {DType.BF16, DType.F32}, {DType.F32, DType.BF16}};
        for (int[] s : sizes) {
            for (DType[] t : types) {
                check(s, t[0], t[1], t[0] == DType.BF16 && s.length > 2 ? 0.25 : 1.0);
            }
        }
    }

    /** Parameters of {@code pt} (the reference steps them through an fp32 master when 16-bit), gradients of {@code gt}. */
    private void check(int[] sizes, DType pt, DType gt, double gradScale) {
        String what = pt + " params, " + gt + " grads, sizes " + Arrays.toString(sizes) + ", scale " + gradScale + " (seed " + seed + ")";
        try (Scope scope = Scope.open("host-adamw8bit")) {
            SequencedMap<String, Shape> shapes = new LinkedHashMap<>();
            for (int i = 0; i < sizes.length; i++) {
                shapes.put("w" + i, Shape.of(sizes[i]));
            }
            FlatLayout layout = FlatLayout.of(shapes);
            long n = layout.numel();
            List<Tensor> params = new ArrayList<>();
            for (int size : sizes) {
                params.add(Tensor.normal(Shape.of(size), pt, Device.CPU, rnd.nextLong(), 0, 0.5));
            }
            Tensor master = Tensor.zeros(Shape.of(n), DType.F32, Device.CPU);
            for (int i = 0; i < sizes.length; i++) {
                Ops.copyInto(params.get(i), layout.view(master, i));
            }
            Side ref = new Side(master, Tensor.zeros(Shape.of(n), gt, Device.CPU), AdamW8bitKernel.State.zeros(n, Device.CPU, Placement.DEVICE),
                    pt == DType.BF16 ? Tensor.zeros(Shape.of(n), DType.BF16, Device.CPU) : null);
            // the reference updates F32 parameters in place (no master), 16-bit ones through the flat master
            ParameterTable targets = new ParameterTable(params, layout);
            Tensor scale = gradScale == 1.0 ? null : Tensor.fromArray(new double[] {gradScale}, Shape.of(1), DType.F32, Device.CPU);
            long mismatches = 0;
            long[] counted = {0};
            for (long step = 1; step <= 4; step++) {
                AdamWStep hp = new AdamWStep(1e-2, 0.9, 0.999, 1e-8, 0.1, step);
                Tensor g = Tensor.normal(Shape.of(n), gt, Device.CPU, rnd.nextLong(), 0, Math.pow(10, -2 * rnd.nextDouble()));
                if (step == 2) { // non-finite gradients: state zeroed, no update
                    Ops.copyInto(Tensor.fromArray(new double[] {Double.NaN, Double.POSITIVE_INFINITY}, Shape.of(2), gt, Device.CPU), g.slice(0, 1, 3));
                }
                Ops.copyInto(g, ref.grad());
                if (pt == DType.F32) { // the reference's weights are the parameters: the host's master starts from them
                    for (int i = 0; i < sizes.length; i++) {
                        Ops.copyInto(params.get(i), layout.view(ref.master(), i));
                    }
                }
                Side host = ref.copy();
                AdamW8bitParity.Codes before = AdamW8bitParity.Codes.of(ref.state());
                AdamW8bitKernel.OP.cpu().step(targets, pt == DType.F32 ? null : ref.master(), ref.grad(), ref.state(), hp, scale);
                HostAdamW8bit.step(host.buffers(layout), 0, n, HostAdamW8bit.Scalars.of(hp, scale == null ? 1.0 : (float) gradScale));
                String at = what + " step " + step;
                mismatches += AdamW8bitParity.compare(layout, g.toDoubleArray(), scale == null ? 1.0 : (float) gradScale, before,
                        AdamW8bitParity.Codes.of(ref.state()), AdamW8bitParity.Codes.of(host.state()), counted, at);
                compareWeights(layout, params, pt == DType.F32 ? null : ref.master(), host, at);
                // go on from the reference's state (and, for 16-bit parameters, its master)
            }
            AdamW8bitParity.assertFewMismatches(mismatches, counted[0], what);
        }
    }

    /** The host master against the reference's weights (fp32: the parameters; 16-bit: its master), the bf16 copy the master rounded. */
    private static void compareWeights(FlatLayout layout, List<Tensor> params, Tensor refMaster, Side host, String at) {
        float[] hm = host.master().toFloatArray();
        float[] rm = refMaster == null ? null : refMaster.toFloatArray();
        float[] w16 = host.weights16() == null ? null : host.weights16().toFloatArray();
        for (int i = 0; i < layout.entries().size(); i++) {
            FlatLayout.Entry e = layout.entries().get(i);
            float[] p = params.get(i).toFloatArray();
            for (int k = 0; k < e.shape().numel(); k++) {
                int f = (int) e.offset() + k;
                float expected = rm == null ? p[k] : rm[f];
                // an fp32 update of a weight of ~0.5 by ~1e-2: the last bits of either
                assertEquals(expected, hm[f], 2 * Math.ulp(expected) + 1e-7, at + " " + e.name() + " master [" + k + "]");
                if (w16 != null) {
                    assertEquals(Numerics.bf16ToFloat(Numerics.floatToBf16(hm[f])), w16[f], at + " " + e.name() + "[" + k + "] is the host master rounded once");
                }
            }
        }
    }

    /**
     * The vector block ({@link VectorAdamW8bit}) is the scalar block bit for bit: gradients bf16 and fp32, scaled or not,
     * with NaN and infinities, a block of zero gradients (maximum 0, so every normalized moment NaN), decay on and
     * off, weights rounded or not, parameters ending inside a block, over several steps.
     */
    @Test
    void theVectorBlockIsBitForBitTheScalarBlock() {
        assertTrue(HostAdamW.vectorized(), "the tests run with --add-modules jdk.incubator.vector (surefire's argLine)");
        for (int trial = 0; trial < 8; trial++) {
            DType gt = trial % 2 == 0 ? DType.BF16 : DType.F32;
            boolean weights16 = trial % 4 < 2;
            double gradScale = trial < 4 ? 1.0 : 0.37;
            double decay = trial % 3 == 0 ? 0.0 : 0.1;
            String what = gt + " grads, weights16 " + weights16 + ", scale " + gradScale + ", decay " + decay + " (seed " + seed + ")";
            try (Scope scope = Scope.open("vector-8bit")) {
                SequencedMap<String, Shape> shapes = new LinkedHashMap<>();
                int[] sizes = {300, 256, 1000, 5, 4097, 70_000};
                for (int i = 0; i < sizes.length; i++) {
                    shapes.put("w" + i, Shape.of(sizes[i]));
                }
                FlatLayout layout = FlatLayout.of(shapes);
                long n = layout.numel();
                Side scalar = new Side(Tensor.normal(Shape.of(n), DType.F32, Device.CPU, rnd.nextLong(), 0, 0.5), Tensor.zeros(Shape.of(n), gt, Device.CPU),
                        AdamW8bitKernel.State.zeros(n, Device.CPU, Placement.DEVICE), weights16 ? Tensor.zeros(Shape.of(n), DType.BF16, Device.CPU) : null);
                Side vector = scalar.copy();
                for (long step = 1; step <= 4; step++) {
                    Tensor g = Tensor.normal(Shape.of(n), gt, Device.CPU, rnd.nextLong(), 0, Math.pow(10, -3 * rnd.nextDouble()));
                    int nonFinite = 1 + rnd.nextInt(5000);
                    Ops.copyInto(Tensor.fromArray(new double[] {Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY}, Shape.of(3), gt,
                            Device.CPU), g.slice(0, nonFinite, nonFinite + 3));
                    if (step == 1) {
                        Ops.copyInto(Tensor.zeros(Shape.of(BLOCK), gt, Device.CPU), g.slice(0, 2 * BLOCK, 3 * BLOCK)); // stays zero: max 0
                    }
                    Ops.copyInto(g, scalar.grad());
                    Ops.copyInto(g, vector.grad());
                    HostAdamW8bit.Scalars s = HostAdamW8bit.Scalars.of(new AdamWStep(1e-2, 0.9, 0.999, 1e-8, decay, step), gradScale);
                    HostAdamW8bit.stepScalar(scalar.buffers(layout), 0, n, s);
                    HostAdamW8bit.stepOnThread(vector.buffers(layout), 0, n, s);
                    String at = what + " step " + step;
                    assertArrayEquals(scalar.master().toFloatArray(), vector.master().toFloatArray(), "master, " + at);
                    assertArrayEquals(scalar.state().m().toByteArray(), vector.state().m().toByteArray(), "m codes, " + at);
                    assertArrayEquals(scalar.state().v().toByteArray(), vector.state().v().toByteArray(), "v codes, " + at);
                    assertArrayEquals(scalar.state().absmaxM().toFloatArray(), vector.state().absmaxM().toFloatArray(), "m maxima, " + at);
                    assertArrayEquals(scalar.state().absmaxV().toFloatArray(), vector.state().absmaxV().toFloatArray(), "v maxima, " + at);
                    if (weights16) {
                        assertArrayEquals(scalar.weights16().toFloatArray(), vector.weights16().toFloatArray(), "bf16 weights, " + at);
                    }
                }
            }
        }
    }

    /** The blocks are independent: one thread over all equals the split over every core, bit for bit. */
    @Test
    void theSplitOverThreadsChangesNoBit() {
        try (Scope scope = Scope.open("split")) {
            SequencedMap<String, Shape> shapes = new LinkedHashMap<>();
            shapes.put("a", Shape.of(300_001));
            shapes.put("b", Shape.of(4096));
            FlatLayout layout = FlatLayout.of(shapes);
            long n = layout.numel();
            Side one = new Side(Tensor.normal(Shape.of(n), DType.F32, Device.CPU, rnd.nextLong(), 0, 0.5),
                    Tensor.normal(Shape.of(n), DType.BF16, Device.CPU, rnd.nextLong(), 0, 1e-2),
                    AdamW8bitKernel.State.zeros(n, Device.CPU, Placement.DEVICE), Tensor.zeros(Shape.of(n), DType.BF16, Device.CPU));
            Side all = one.copy();
            for (long step = 1; step <= 3; step++) {
                HostAdamW8bit.Scalars s = HostAdamW8bit.Scalars.of(new AdamWStep(1e-3, 0.9, 0.999, 1e-8, 0.01, step), 1.0);
                HostAdamW8bit.stepOnThread(one.buffers(layout), 0, n, s);
                HostAdamW8bit.step(all.buffers(layout), 0, n, s);
            }
            assertArrayEquals(one.master().toFloatArray(), all.master().toFloatArray(), "master (seed " + seed + ")");
            assertArrayEquals(one.state().m().toByteArray(), all.state().m().toByteArray(), "m codes");
            assertArrayEquals(one.state().v().toByteArray(), all.state().v().toByteArray(), "v codes");
            assertArrayEquals(one.state().absmaxM().toFloatArray(), all.state().absmaxM().toFloatArray(), "m maxima");
            assertArrayEquals(one.weights16().toFloatArray(), all.weights16().toFloatArray(), "bf16 weights");
            HostAdamW8bit.Buffers b = one.buffers(layout);
            HostAdamW8bit.Scalars s = HostAdamW8bit.Scalars.of(new AdamWStep(1e-3, 0.9, 0.999, 1e-8, 0.01, 4), 1.0);
            assertThrows(IndexOutOfBoundsException.class, () -> HostAdamW8bit.step(b, 100, n, s), "a range that starts inside a block");
            assertThrows(IndexOutOfBoundsException.class, () -> HostAdamW8bit.step(b, 0, n + BLOCK, s), "past the buffers");
        }
    }
}
