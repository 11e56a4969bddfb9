package dev.jtune.engine.optim;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.engine.fused.ParameterTable;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The flat AdamW (one multi-tensor step per (device, dtype) group) against the per-tensor path it replaced (the
 * per-tensor kernel on each parameter, stepping a master copy and copying it into a 16-bit parameter), bit for bit on
 * the cpu; its state by parameter name; and clipping over the flat gradient buffers against the list form.
 */
class FlatAdamWTest {
    private final Random rnd = Seeds.random();
    private static final AdamW.Config CONFIG = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.1);

    /** Mixed shapes, sizes around and off multiples of the alignment, two dtypes interleaved (two groups). */
    private static final List<Shape> SHAPES = List.of(Shape.of(3, 5), Shape.of(256), Shape.of(1), Shape.of(17, 31), Shape.of(257),
            Shape.of(2, 3, 7), Shape.of(512), Shape.of(100));

    private static DType dtypeOf(int i) {
        return i % 2 == 0 ? DType.BF16 : DType.F32;
    }

    private SequencedMap<String, Tensor> params(long seed) {
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < SHAPES.size(); i++) {
            out.put("layer." + i + ".weight", Tensor.uniform(SHAPES.get(i), dtypeOf(i), Device.CPU, seed + i, -1, 1).requiresGrad(true));
        }
        return out;
    }

    /** The per-tensor path: state per parameter, the per-tensor kernel, master copied into a 16-bit parameter. */
    private record Reference(Tensor param, Tensor master, Tensor m, Tensor v) {
        static Reference of(Tensor p) {
            Tensor master = p.dtype() == DType.F32 || p.dtype() == DType.F64 ? null : p.cast(DType.F32);
            return new Reference(p, master, Tensor.zeros(p.shape(), DType.F32, p.device()), Tensor.zeros(p.shape(), DType.F32, p.device()));
        }

        void step(Tensor grad, AdamWStep s) {
            Tensor target = master != null ? master : param;
            AdamWKernel.on(target).step(target, grad, m, v, s, null);
            if (master != null) {
                Ops.copyInto(master, param);
            }
        }
    }

    @Test
    void flatStepEqualsThePerTensorPathBitForBit() {
        long seed = rnd.nextLong();
        try (Scope s = Scope.open("flat adamw")) {
            SequencedMap<String, Tensor> flat = params(seed);
            List<Reference> ref = new ArrayList<>();
            for (Tensor p : params(seed).values()) {
                ref.add(Reference.of(p.detach()));
            }
            AdamW opt = new AdamW(flat, CONFIG);
            assertEquals(2, opt.gradientBuffers().size(), "one group per dtype");
            List<Tensor> ps = new ArrayList<>(flat.values());
            for (int step = 1; step <= 5; step++) {
                for (int i = 0; i < ps.size(); i++) {
                    Tensor g = Tensor.uniform(SHAPES.get(i), dtypeOf(i), Device.CPU, rnd.nextLong(), -1, 1);
                    Ops.copyInto(g, ps.get(i).grad()); // as backward accumulates into the attached view
                    ref.get(i).step(g, new AdamWStep(CONFIG.lr(), CONFIG.beta1(), CONFIG.beta2(), CONFIG.eps(), CONFIG.weightDecay(), step));
                }
                opt.step();
                opt.zeroGrad();
                for (int i = 0; i < ps.size(); i++) {
                    String name = "layer." + i + ".weight";
                    String at = name + " " + ps.get(i).dtype() + " " + ps.get(i).shape() + " after step " + step;
                    assertArrayEquals(ref.get(i).param().toByteArray(), ps.get(i).toByteArray(), at);
                    assertArrayEquals(ref.get(i).m().toByteArray(), opt.state().get(name + ".exp_avg").toByteArray(), at + ": exp_avg");
                    assertArrayEquals(ref.get(i).v().toByteArray(), opt.state().get(name + ".exp_avg_sq").toByteArray(), at + ": exp_avg_sq");
                    if (ref.get(i).master() != null) {
                        assertArrayEquals(ref.get(i).master().toByteArray(), opt.state().get(name + ".master").toByteArray(), at + ": master");
                    }
                    assertArrayEquals(new float[(int) SHAPES.get(i).numel()], ps.get(i).grad().cast(DType.F32).toFloatArray(), 0f, "zeroGrad");
                }
            }
            assertEquals(5, opt.steps());
            for (int group = 0; group < 2; group++) {
                FlatLayout layout = opt.gradientBuffers().get(group).layout();
                for (Tensor buffer : opt.flatState(group)) {
                    assertGapsZero(layout, buffer, "state buffer of group " + group);
                }
            }
        }
    }

    @Test
    void flatKernelMatchesThePerTensorKernelForF64AndF16WithAScale() {
        for (DType dtype : new DType[] {DType.F64, DType.F16}) {
            try (Scope s = Scope.open("kernel")) {
                List<Shape> shapes = List.of(Shape.of(300), Shape.of(5, 7), Shape.of(256));
                SequencedMap<String, Shape> named = new LinkedHashMap<>();
                List<Tensor> params = new ArrayList<>();
                List<Tensor> refParams = new ArrayList<>();
                for (int i = 0; i < shapes.size(); i++) {
                    named.put("p" + i, shapes.get(i));
                    Tensor p = Tensor.uniform(shapes.get(i), dtype, Device.CPU, rnd.nextLong(), -1, 1);
                    params.add(p);
                    refParams.add(p.copy());
                }
                FlatLayout layout = FlatLayout.of(named);
                DType stat = dtype == DType.F64 ? DType.F64 : DType.F32;
                Tensor grad = Tensor.zeros(Shape.of(layout.numel()), dtype, Device.CPU);
                Tensor m = Tensor.zeros(Shape.of(layout.numel()), stat, Device.CPU);
                Tensor v = Tensor.zeros(Shape.of(layout.numel()), stat, Device.CPU);
                Tensor master = dtype == DType.F64 ? null : Tensor.zeros(Shape.of(layout.numel()), DType.F32, Device.CPU);
                List<Reference> ref = new ArrayList<>();
                for (int i = 0; i < shapes.size(); i++) {
                    Tensor rm = master == null ? null : refParams.get(i).cast(DType.F32);
                    if (master != null) {
                        Ops.copyInto(params.get(i), layout.view(master, i));
                    }
                    ref.add(new Reference(refParams.get(i), rm, Tensor.zeros(shapes.get(i), stat, Device.CPU), Tensor.zeros(shapes.get(i), stat, Device.CPU)));
                }
                Tensor scale = Tensor.fromArray(new double[] {0.37}, Shape.of(1), DType.F32, Device.CPU);
                ParameterTable table = new ParameterTable(params, layout);
                for (int step = 1; step <= 3; step++) {
                    AdamWStep hp = new AdamWStep(1e-2, 0.9, 0.999, 1e-8, 0.1, step);
                    for (int i = 0; i < shapes.size(); i++) {
                        Tensor g = Tensor.uniform(shapes.get(i), dtype, Device.CPU, rnd.nextLong(), -1, 1);
                        Ops.copyInto(g, layout.view(grad, i));
                        Reference r = ref.get(i);
                        Tensor target = r.master() != null ? r.master() : r.param();
                        AdamWKernel.on(target).step(target, g, r.m(), r.v(), hp, scale);
                        if (r.master() != null) {
                            Ops.copyInto(r.master(), r.param());
                        }
                    }
                    AdamWKernel.on(m).flatStep(table, grad, master, m, v, hp, scale);
                    for (int i = 0; i < shapes.size(); i++) {
                        String at = dtype + " p" + i + " step " + step;
                        assertArrayEquals(ref.get(i).param().toByteArray(), params.get(i).toByteArray(), at);
                        assertArrayEquals(ref.get(i).m().toByteArray(), layout.view(m, i).toByteArray(), at + " m");
                        assertArrayEquals(ref.get(i).v().toByteArray(), layout.view(v, i).toByteArray(), at + " v");
                    }
                }
                assertGapsZero(layout, m, dtype + " m");
                assertGapsZero(layout, v, dtype + " v");
            }
        }
    }

    @Test
    void theTableHoldsEachParametersAddressOffsetAndSize() {
        try (Scope s = Scope.open("table")) {
            SequencedMap<String, Tensor> ps = params(rnd.nextLong());
            SequencedMap<String, Shape> shapes = new LinkedHashMap<>();
            List<Tensor> f32 = new ArrayList<>();
            ps.forEach((k, v) -> {
                if (v.dtype() == DType.F32) {
                    shapes.put(k, v.shape());
                    f32.add(v);
                }
            });
            FlatLayout layout = FlatLayout.of(shapes);
            ParameterTable table = new ParameterTable(f32, layout);
            long[] t = table.current().toLongArray();
            for (int i = 0; i < f32.size(); i++) {
                assertEquals(f32.get(i).address(), t[3 * i]);
                assertEquals(layout.entries().get(i).offset(), t[3 * i + 1]);
                assertEquals(f32.get(i).numel(), t[3 * i + 2]);
            }
            assertThrows(IllegalArgumentException.class, () -> new ParameterTable(List.of(f32.get(1).transpose(0, 1)),
                    FlatLayout.of(new LinkedHashMap<>(Map.of("x", Shape.of(31, 17))))), "a strided parameter is refused");
        }
    }

    @Test
    void stateIsNamedPerParameterAndRestoresByName() {
        long seed = rnd.nextLong();
        try (Scope s = Scope.open("state")) {
            SequencedMap<String, Tensor> ps = params(seed);
            AdamW a = new AdamW(ps, CONFIG);
            List<String> expected = new ArrayList<>();
            int i = 0;
            for (String name : ps.keySet()) {
                expected.add(name + ".exp_avg");
                expected.add(name + ".exp_avg_sq");
                if (dtypeOf(i++) == DType.BF16) {
                    expected.add(name + ".master");
                }
            }
            assertEquals(expected, List.copyOf(a.state().keySet()), "per parameter, in the parameters' order");
            for (Tensor p : ps.values()) {
                Ops.copyInto(Tensor.uniform(p.shape(), p.dtype(), Device.CPU, rnd.nextLong(), -1, 1), p.grad());
            }
            a.step();
            a.step();
            // a second optimizer over copies of the parameters takes the state by name, and then steps identically
            SequencedMap<String, Tensor> copies = new LinkedHashMap<>();
            ps.forEach((k, v) -> copies.put(k, v.detach().copy().requiresGrad(true)));
            AdamW b = new AdamW(copies, CONFIG);
            Map<String, Tensor> saved = new LinkedHashMap<>();
            a.state().forEach((k, v) -> saved.put(k, v.copy()));
            b.restore(saved, a.steps());
            for (String name : ps.keySet()) {
                Tensor g = Tensor.uniform(ps.get(name).shape(), ps.get(name).dtype(), Device.CPU, rnd.nextLong(), -1, 1);
                Ops.copyInto(g, ps.get(name).grad());
                Ops.copyInto(g, copies.get(name).grad());
            }
            a.step();
            b.step();
            for (String name : ps.keySet()) {
                assertArrayEquals(ps.get(name).toByteArray(), copies.get(name).toByteArray(), name);
            }
            saved.remove(expected.get(0));
            saved.put("other.exp_avg", Tensor.zeros(Shape.of(1), DType.F32, Device.CPU));
            ShapeException e = assertThrows(ShapeException.class, () -> b.restore(saved, 2));
            assertTrue(e.getMessage().contains(expected.get(0)) && e.getMessage().contains("other.exp_avg"), e.getMessage());
        }
    }

    @Test
    void aListOfParametersIsNamedByIndex() {
        try (Scope s = Scope.open("indexed")) {
            Tensor a = Tensor.zeros(Shape.of(3), DType.F32, Device.CPU).requiresGrad(true);
            Tensor b = Tensor.zeros(Shape.of(2), DType.BF16, Device.CPU).requiresGrad(true);
            assertEquals(List.of("0.exp_avg", "0.exp_avg_sq", "1.exp_avg", "1.exp_avg_sq", "1.master"),
                    List.copyOf(new AdamW(List.of(a, b), CONFIG).state().keySet()));
        }
    }

    @Test
    void clippingOverTheFlatBuffersAgreesWithTheListForm() {
        long seed = rnd.nextLong();
        try (Scope s = Scope.open("clip")) {
            SequencedMap<String, Tensor> flat = params(seed);
            AdamW opt = new AdamW(flat, CONFIG);
            List<Tensor> listParams = new ArrayList<>();
            for (Tensor p : params(seed).values()) {
                listParams.add(p);
            }
            List<Tensor> ps = new ArrayList<>(flat.values());
            for (int i = 0; i < ps.size(); i++) {
                Tensor g = Tensor.uniform(SHAPES.get(i), dtypeOf(i), Device.CPU, rnd.nextLong(), -1, 1);
                Ops.copyInto(g, ps.get(i).grad());
                Tensor w = listParams.get(i);
                w.mul(g).reshape(-1).sum(0).backward(); // w.grad = g, exactly
                assertArrayEquals(g.toByteArray(), w.grad().toByteArray());
            }
            double listNorm = GradClip.norm(listParams).value();
            double flatNorm = GradClip.flatNorm(opt.gradientBuffers()).value();
            assertEquals(listNorm, flatNorm, 1e-6 * listNorm, "the same norm up to the fp32 sum's grouping");
            // a threshold above the norm changes nothing, in either form
            GradClip.clipFlatGradNorm(opt.gradientBuffers(), flatNorm * 10);
            for (int i = 0; i < ps.size(); i++) {
                assertArrayEquals(listParams.get(i).grad().toByteArray(), ps.get(i).grad().toByteArray(), "unclipped " + i);
            }
            double max = listNorm / 3;
            double listBefore = GradClip.clipGradNorm(listParams, max).value();
            double flatBefore = GradClip.clipFlatGradNorm(opt.gradientBuffers(), max).value();
            assertEquals(listBefore, flatBefore, 1e-6 * listBefore);
            for (int i = 0; i < ps.size(); i++) {
                float[] want = listParams.get(i).grad().cast(DType.F32).toFloatArray();
                float[] got = ps.get(i).grad().cast(DType.F32).toFloatArray();
                // the factors may differ in fp32's last place, so a bf16 factor by a bf16 step: products two steps apart at most
                double tol = dtypeOf(i) == DType.BF16 ? 0x1p-6 : 1e-6;
                for (int k = 0; k < want.length; k++) {
                    assertEquals(want[k], got[k], tol * Math.abs(want[k]), "clipped gradient " + i + "[" + k + "]");
                }
            }
            assertEquals(max, GradClip.flatNorm(opt.gradientBuffers()).value(), 1e-2 * max, "clipped to the threshold");
            for (GradientBuffer b : opt.gradientBuffers()) {
                assertGapsZero(b.layout(), b.flat(), "gradient buffer " + b.dtype());
            }
        }
    }

    /** Every element of {@code flat} outside the layout's entries is zero. */
    static void assertGapsZero(FlatLayout layout, Tensor flat, String what) {
        double[] values = flat.toDoubleArray();
        boolean[] inside = new boolean[values.length];
        for (FlatLayout.Entry e : layout.entries()) {
            for (long k = e.offset(); k < e.end(); k++) {
                inside[(int) k] = true;
            }
        }
        int gaps = 0;
        for (int k = 0; k < values.length; k++) {
            if (!inside[k]) {
                gaps++;
                assertEquals(0.0, values[k], 0.0, what + ": gap element " + k);
            }
        }
        assertTrue(gaps > 0, what + ": the layout has gaps to check");
    }
}
