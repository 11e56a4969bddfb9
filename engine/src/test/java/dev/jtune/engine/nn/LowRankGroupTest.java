package dev.jtune.engine.nn;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.Transpose;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.testing.Seeds;
import dev.jtune.testing.SystemProperties;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Optional;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link LinearGroup#forwardEach} with {@code -Djtune.sharedLoraDown=true} ({@link LowRankGroup}): parts whose adapters
 * are low-rank updates share x's down product, and give what the parts give apart: the outputs, x's gradient and every
 * adapter gradient, on the cpu in F32 (separate A's, stacked by a copy) and in BF16 with the A's cast in one flat
 * buffer ({@link ComputeCopies}, stacked as a view); parts that cannot share run apart.
 */
class LowRankGroupTest {
    private final long seed = Seeds.seed();
    /** {@code scale (x A^T) B^T}, its products in {@code compute} (A and B cast as LoRA casts them), or none when {@code shares} is off. */
    private record Update(Tensor a, Tensor b, double scale, DType compute, boolean shares) implements Adapter {
        @Override
        public Tensor apply(Tensor x) {
            Tensor down = Ops.matmul(x.cast(compute), Autograd.castKept(a, compute), Transpose.B, scale);
            return Ops.matmul(down, Autograd.castKept(b, compute), Transpose.B).cast(x.dtype());
        }

        /** The up product accumulated into y, as LoRA's adapter adds it (one rounding of the sum). */
        @Override
        public Tensor addTo(Tensor y, Tensor x) {
            Tensor down = Ops.matmul(x.cast(compute), Autograd.castKept(a, compute), Transpose.B, scale);
            return Ops.addMatmulInto(y, down, Autograd.castKept(b, compute), Transpose.B);
        }

        @Override
        public Optional<LowRank> lowRank(Tensor x) {
            return shares ? Optional.of(new LowRank(Autograd.castKept(a, compute), Autograd.castKept(b, compute), scale)) : Optional.empty();
        }
    }

    private static Linear part(long in, long out, DequantWorkspace ws, long s) {
        DType dtype = ws.dtype();
        Linear l = new Linear(in, out, Linear.Bias.NONE, ws);
        l.weightParameter().set(Tensor.normal(l.shape(), DType.F32, Device.CPU, s, 0, 0.5).cast(dtype).to(ws.device()));
        return l;
    }

    private static Update update(long in, long out, long rank, DType compute, long s, boolean shares) {
        return update(in, out, rank, compute, s, shares, Device.CPU);
    }

    private static Update update(long in, long out, long rank, DType compute, long s, boolean shares, Device device) {
        return new Update(Tensor.normal(Shape.of(rank, in), DType.F32, Device.CPU, s, 0, 0.3).to(device).requiresGrad(true),
                Tensor.normal(Shape.of(out, rank), DType.F32, Device.CPU, s + 1, 0, 0.3).to(device).requiresGrad(true), 0.75, compute, shares);
    }

    /** Outputs, then x's gradient, then each update's A and B gradients, for seeds g over the outputs. */
    private static List<float[]> run(LinearGroup group, List<Update> updates, Tensor x, List<Tensor> g, boolean shared) {
        return SystemProperties.with(LowRankGroup.PROPERTY, Boolean.toString(shared), () -> run(group, updates, x, g));
    }

    private static List<float[]> run(LinearGroup group, List<Update> updates, Tensor x, List<Tensor> g) {
        x.zeroGrad();
        for (Update u : updates) {
            u.a().zeroGrad();
            u.b().zeroGrad();
        }
        Tensor[] ys = group.forwardEach(x);
        Tensor loss = null;
        for (int i = 0; i < ys.length; i++) {
            Tensor term = ys[i].cast(DType.F32).mul(g.get(i)).sum(0).sum(0);
            loss = loss == null ? term : loss.add(term);
        }
        loss.backward();
        List<float[]> out = new java.util.ArrayList<>();
        for (Tensor y : ys) {
            out.add(y.cast(DType.F32).toFloatArray());
        }
        out.add(x.grad().cast(DType.F32).toFloatArray());
        for (Update u : updates) {
            out.add(u.a().grad().toFloatArray());
            out.add(u.b().grad().toFloatArray());
        }
        return out;
    }

    private static List<Tensor> seeds(long rows, long[] outs, long s, Device device) {
        List<Tensor> g = new java.util.ArrayList<>();
        for (int i = 0; i < outs.length; i++) {
            g.add(Tensor.normal(Shape.of(rows, outs[i]), DType.F32, Device.CPU, s + i, 0, 1).to(device));
        }
        return g;
    }

    @Test
    void sharedDownEqualsThePartsApartInF32() {
        String what = " (seed " + seed + ")";
        try (Scope s = Scope.open("shared down")) {
            long[] outs = {12, 4, 4};
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Linear q = part(64, outs[0], ws, seed);
            Linear k = part(64, outs[1], ws, seed + 1);
            Linear v = part(64, outs[2], ws, seed + 2);
            List<Update> updates = List.of(update(64, outs[0], 3, DType.F32, seed + 3, true), update(64, outs[1], 3, DType.F32, seed + 5, true),
                    update(64, outs[2], 3, DType.F32, seed + 7, true));
            q.attach(updates.get(0));
            k.attach(updates.get(1));
            v.attach(updates.get(2));
            LinearGroup group = new LinearGroup(q, k, v);
            Tensor x = Tensor.normal(Shape.of(10, 64), DType.F32, Device.CPU, seed + 9, 0, 1).requiresGrad(true);
            List<Tensor> g = seeds(10, outs, seed + 10, Device.CPU);
            List<float[]> apart = run(group, updates, x, g, false);
            List<float[]> shared = run(group, updates, x, g, true);
            String[] names = {"q", "k", "v", "x's gradient", "q's A", "q's B", "k's A", "k's B", "v's A", "v's B"};
            for (int i = 0; i < apart.size(); i++) {
                // fp32 sums of 64 products (x's gradient: one sum over 9 ranks against three of 3 added in turn)
                assertArrayEquals(apart.get(i), shared.get(i), 1e-5f, names[i] + what);
            }
        }
    }

    @Test
    void castsInOneFlatBufferStackAsAViewAndTrainAsApartInBf16() {
        checkBf16(Device.CPU, seed, true);
    }

    /**
     * On {@code device}: the bf16 group against its parts apart. {@code sameProducts}: the outputs and A's and B's
     * gradients bit for bit (the cpu's products sum each element in one order whatever the width; the GPU's may
     * not: there they, like x's gradient, get the bf16 bound below).
     */
    static void checkBf16(Device device, long seed, boolean sameProducts) {
        String what = " on " + device + " (seed " + seed + ")";
        try (Scope s = Scope.open("shared down, bf16")) {
            long[] outs = {16, 24};
            DequantWorkspace ws = new DequantWorkspace(DType.BF16, device);
            Linear gate = part(64, outs[0], ws, seed);
            Linear up = part(64, outs[1], ws, seed + 1);
            List<Update> updates = List.of(update(64, outs[0], 4, DType.BF16, seed + 3, true, device),
                    update(64, outs[1], 4, DType.BF16, seed + 5, true, device));
            gate.attach(updates.get(0));
            up.attach(updates.get(1));
            LinearGroup group = new LinearGroup(gate, up);
            // the A's first, as the trainer lays them out (4 x 64: a whole number of the flat layout's 256-element alignment)
            SequencedMap<String, Tensor> weights = new LinkedHashMap<>();
            weights.put("gate.A", updates.get(0).a());
            weights.put("up.A", updates.get(1).a());
            weights.put("gate.B", updates.get(0).b());
            weights.put("up.B", updates.get(1).b());
            Tensor x = Tensor.normal(Shape.of(8, 64), DType.F32, Device.CPU, seed + 9, 0, 1).cast(DType.BF16).to(device).requiresGrad(true);
            List<Tensor> g = seeds(8, outs, seed + 10, device);
            try (ComputeCopies copies = ComputeCopies.of(weights, DType.BF16)) {
                List<float[]> apart;
                List<float[]> shared;
                try (Scope.Entered provided = copies.provide()) {
                    List<Adapter.LowRank> lowRanks = List.of(updates.get(0).lowRank(x).orElseThrow(), updates.get(1).lowRank(x).orElseThrow());
                    Tensor stacked = LowRankGroup.stacked(lowRanks, 64, 8);
                    assertSame(TensorInternals.storage(lowRanks.get(0).a()), TensorInternals.storage(stacked), "the A's stacked as a view" + what);
                    assertArrayEquals(Ops.concat(0, lowRanks.get(0).a(), lowRanks.get(1).a()).cast(DType.F32).toFloatArray(),
                            stacked.cast(DType.F32).toFloatArray(), 0f, "the view is the A's one under the other" + what);
                    apart = run(group, updates, x, g, false);
                    shared = run(group, updates, x, g, true);
                }
                String[] names = {"gate", "up", "x's gradient", "gate's A", "gate's B", "up's A", "up's B"};
                for (int i = 0; i < apart.size(); i++) {
                    float[] e = apart.get(i);
                    float[] a = shared.get(i);
                    float largest = 0;
                    for (float v : e) {
                        largest = Math.max(largest, Math.abs(v));
                    }
                    for (int j = 0; j < e.length; j++) {
                        // x's gradient: its bf16 partial sums (the two bases', the updates' in turn against one sum
                        // over both ranks) round differently, each within half a bf16 ulp of the partial sum, bounded
                        // by the gradient's largest element: four such ulps; the rest the same products
                        float bound = i == 2 || !sameProducts ? 4 * Math.ulp(largest) * 65536 : 0f;
                        assertEquals(e[j], a[j], bound, names[i] + " [" + j + "]" + what);
                    }
                }
            }
        }
    }

    @Test
    void partsThatCannotShareRunApart() {
        SystemProperties.with(LowRankGroup.PROPERTY, "true", this::cannotShare);
    }

    private void cannotShare() {
        String what = " (seed " + seed + ")";
        try (Scope s = Scope.open("apart")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Linear a = part(16, 3, ws, seed);
            Linear b = part(16, 5, ws, seed + 1);
            LinearGroup group = new LinearGroup(a, b);
            Tensor x = Tensor.normal(Shape.of(4, 16), DType.F32, Device.CPU, seed + 2, 0, 1);
            a.attach(update(16, 3, 2, DType.F32, seed + 3, true));
            float[][] expected = {a.forward(x).toFloatArray(), b.forward(x).toFloatArray()};
            Tensor[] each = group.forwardEach(x);
            assertArrayEquals(expected[0], each[0].toFloatArray(), 0f, "a part without an adapter: apart" + what);
            assertArrayEquals(expected[1], each[1].toFloatArray(), 0f, "a part without an adapter: apart" + what);
            b.attach(update(16, 5, 2, DType.F32, seed + 5, false));
            assertEquals(2, group.forwardEach(x).length, "an update that cannot share (dropout drawn): apart");
            assertArrayEquals(b.forward(x).toFloatArray(), group.forwardEach(x)[1].toFloatArray(), 0f, "dropout drawn: apart" + what);
            List<Adapter.LowRank> two = List.of(a.adapter().lowRank(x).orElseThrow(), a.adapter().lowRank(x).orElseThrow());
            assertTrue(LowRankGroup.applies(x, two), "two updates of one scale and dtype share a 2-D input");
            assertFalse(LowRankGroup.applies(x.reshape(2, 2, 16), two), "a batched input runs apart");
            assertFalse(LowRankGroup.applies(x, two.subList(0, 1)), "one update alone runs apart");
        }
    }
}
