package dev.jtune.engine.optim;

import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

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
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The host-offloaded AdamW on the cpu backend (its host copies are plain copies there, the update the same Vector API
 * code as on a GPU): against the device AdamW over several steps, the delayed schedule's one-step lag, checkpoints
 * restored across the two optimizers, and, on meta, where its memory is counted.
 */
class HostOffloadAdamWTest {
    /** Shapes that split across small buckets and leave alignment gaps. */
    private static final List<long[]> SHAPES = List.of(new long[] {3, 5}, new long[] {300}, new long[] {17}, new long[] {2, 2, 70});
    static final AdamW.Config CONFIG = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.01);
    /** Small enough that buckets cut through parameters and gaps. */
    private static final long BUCKET = 200;

    /** Parameters named "0", "1", ... as {@code new AdamW(List, Config)} names them, so both optimizers' state names match. */
    static SequencedMap<String, Tensor> params(double[][] values, DType dtype, Device device) {
        return params(SHAPES, values, dtype, device);
    }

    /** Parameters of {@code shapes} named "0", "1", ... with {@code values} (one array per shape), requiring grad. */
    static SequencedMap<String, Tensor> params(List<long[]> shapes, double[][] values, DType dtype, Device device) {
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < shapes.size(); i++) {
            out.put(Integer.toString(i), Tensor.fromArray(values[i], Shape.of(shapes.get(i)), dtype, device).requiresGrad(true));
        }
        return out;
    }

    static double[][] randomValues(Random rnd, double scale) {
        return randomValues(SHAPES, rnd, scale);
    }

    /** Gaussian values times {@code scale}, one array per shape. */
    static double[][] randomValues(List<long[]> shapes, Random rnd, double scale) {
        double[][] v = new double[shapes.size()][];
        for (int i = 0; i < v.length; i++) {
            v[i] = new double[(int) Shape.of(shapes.get(i)).numel()];
            for (int j = 0; j < v[i].length; j++) {
                v[i][j] = rnd.nextGaussian() * scale;
            }
        }
        return v;
    }

    /** grad(p_i) += g_i, by differentiating sum(p_i * g_i): exactly g_i in the parameter's dtype. */
    private static void setGrads(SequencedMap<String, Tensor> params, double[][] grads) {
        int i = 0;
        for (Tensor p : params.values()) {
            Tensor w = Tensor.fromArray(grads[i++], p.shape(), p.dtype(), p.device());
            p.mul(w).reshape(-1).sum(0).backward();
        }
    }

    /** One step from gradients {@code grads}, then zeroGrad. */
    static void step(Optimizer opt, SequencedMap<String, Tensor> params, double[][] grads) {
        try (Scope s = Scope.open("step")) {
            setGrads(params, grads);
            opt.step();
            opt.zeroGrad();
        }
    }

    private static HostOffloadAdamW offload(SequencedMap<String, Tensor> params, HostOffloadAdamW.Schedule schedule) {
        return HostOffloadAdamW.builder(params, CONFIG).bucketElements(BUCKET).schedule(schedule).build();
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void equalsTheDeviceAdamWOverSeveralSteps(DType dtype) {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        int steps = 5;
        try (Scope scope = Scope.open("equal")) {
            SequencedMap<String, Tensor> a = params(init, dtype, Device.CPU);
            SequencedMap<String, Tensor> b = params(init, dtype, Device.CPU);
            AdamW device = new AdamW(new ArrayList<>(a.values()), CONFIG);
            try (HostOffloadAdamW host = offload(b, HostOffloadAdamW.Schedule.IN_STEP)) {
                assertEquals(List.copyOf(device.state().keySet()), List.copyOf(host.state().keySet()), "the same state names, in order");
                Scales scales = new Scales();
                for (int t = 1; t <= steps; t++) {
                    double[][] g = randomValues(rnd, 1.0);
                    scales.observe(device.state(), g);
                    step(device, a, g);
                    step(host, b, g);
                    scales.observe(device.state(), null);
                    assertClose(device.state(), host.state(), t, scales, "after step " + t);
                    assertWeightsClose(a, b, dtype, t, "after step " + t);
                    assertWeightsAreTheMaster(b, host, dtype);
                }
                assertEquals(steps, host.steps());
            }
        }
    }

    /**
     * Gradients that do not depend on the weights make the host updates of both schedules the same; the delayed one's
     * weights reach the parameters one step later, and at once on flush.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void theDelayedScheduleAppliesEachUpdateOneStepLate(DType dtype) {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        try (Scope scope = Scope.open("delayed")) {
            SequencedMap<String, Tensor> a = params(init, dtype, Device.CPU);
            SequencedMap<String, Tensor> b = params(init, dtype, Device.CPU);
            try (HostOffloadAdamW now = offload(a, HostOffloadAdamW.Schedule.IN_STEP);
                 HostOffloadAdamW late = offload(b, HostOffloadAdamW.Schedule.DELAYED)) {
                List<float[]> previous = values(a);
                for (int t = 1; t <= 4; t++) {
                    double[][] g = randomValues(rnd, 1.0);
                    step(now, a, g);
                    step(late, b, g);
                    assertWeightsEqual(previous, values(b), "after step " + t + " the delayed weights are step " + (t - 1) + "'s");
                    previous = values(a);
                }
                late.flush();
                assertWeightsEqual(values(a), values(b), "flushed: the last update is on the device");
                assertEquals(bits(now.state()), bits(late.state()), "the same state");
            }
        }
    }

    /**
     * A checkpoint of either optimizer restores into the other: the state round-trips exactly, and the next step agrees
     * with the other optimizer's within fp32 rounding and, restored into its own kind, bit for bit with the run that
     * went on.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void checkpointsRestoreAcrossTheDeviceAndTheOffloadedOptimizer(DType dtype) {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        double[][][] grads = new double[4][][];
        for (int t = 0; t < grads.length; t++) {
            grads[t] = randomValues(rnd, 1.0);
        }
        try (Scope scope = Scope.open("checkpoint")) {
            // AdamW -> offloaded
            SequencedMap<String, Tensor> a = params(init, dtype, Device.CPU);
            AdamW device = new AdamW(new ArrayList<>(a.values()), CONFIG);
            for (int t = 0; t < 3; t++) {
                step(device, a, grads[t]);
            }
            Map<String, Tensor> saved = copies(device.state());
            double[][] weights = doubles(a);
            SequencedMap<String, Tensor> b = params(weights, dtype, Device.CPU);
            SequencedMap<String, Tensor> c = params(weights, dtype, Device.CPU);
            AdamW deviceAgain = new AdamW(new ArrayList<>(c.values()), CONFIG);
            deviceAgain.restore(saved, device.steps());
            try (HostOffloadAdamW host = offload(b, HostOffloadAdamW.Schedule.IN_STEP)) {
                host.restore(saved, device.steps());
                assertEquals(3, host.steps());
                assertEquals(bits(saved), bits(host.state()), "restored exactly");
                Scales scales = new Scales();
                scales.observe(saved, grads[3]);
                step(host, b, grads[3]);
                step(deviceAgain, c, grads[3]);
                assertClose(deviceAgain.state(), host.state(), 1, scales, "the step after restoring AdamW's checkpoint");
                assertWeightsClose(c, b, dtype, 1, "the step after restoring AdamW's checkpoint");
            }

            // offloaded -> AdamW, and -> offloaded again
            SequencedMap<String, Tensor> d = params(init, dtype, Device.CPU);
            try (HostOffloadAdamW host = offload(d, HostOffloadAdamW.Schedule.IN_STEP)) {
                for (int t = 0; t < 3; t++) {
                    step(host, d, grads[t]);
                }
                Map<String, Tensor> hostSaved = copies(host.state());
                double[][] hostWeights = doubles(d);
                SequencedMap<String, Tensor> e = params(hostWeights, dtype, Device.CPU);
                SequencedMap<String, Tensor> f = params(hostWeights, dtype, Device.CPU);
                AdamW toDevice = new AdamW(new ArrayList<>(e.values()), CONFIG);
                toDevice.restore(hostSaved, host.steps());
                assertEquals(bits(hostSaved), bits(toDevice.state()), "restored exactly");
                try (HostOffloadAdamW resumed = offload(f, HostOffloadAdamW.Schedule.IN_STEP)) {
                    resumed.restore(hostSaved, host.steps());
                    Scales scales = new Scales();
                    scales.observe(hostSaved, grads[3]);
                    step(host, d, grads[3]);
                    step(toDevice, e, grads[3]);
                    step(resumed, f, grads[3]);
                    assertEquals(bits(host.state()), bits(resumed.state()), "resumed equals uninterrupted, bit for bit");
                    assertWeightsEqual(values(d), values(f), "resumed equals uninterrupted");
                    assertClose(toDevice.state(), host.state(), 1, scales, "AdamW's step after the offloaded checkpoint");
                    assertWeightsClose(e, d, dtype, 1, "AdamW's step after the offloaded checkpoint");
                }
            }
        }
    }

    /**
     * Weight offload's parameters: bf16 weights that live in host memory get the update's rounding written straight
     * into them (no bf16 copy of their own on the host), with the same bits as the same weights on the device, for
     * fp32 and 8-bit moments; on meta the optimizer then counts no host weights for them.
     */
    @ParameterizedTest
    @EnumSource(HostOffloadAdamW.Moments.class)
    void hostMappedBf16WeightsAreWrittenInPlace(HostOffloadAdamW.Moments moments) {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        try (Scope scope = Scope.open("homed")) {
            SequencedMap<String, Tensor> onDevice = params(init, DType.BF16, Device.CPU);
            SequencedMap<String, Tensor> homed = new LinkedHashMap<>();
            int k = 0;
            for (Map.Entry<String, Tensor> e : params(init, DType.BF16, Device.CPU).entrySet()) {
                Tensor p = e.getValue();
                if (k++ % 2 == 1) { // every other parameter lives in host memory
                    Tensor h = Tensor.zeros(p.shape(), DType.BF16, Device.CPU, Placement.HOST_MAPPED);
                    Ops.copyInto(p, h);
                    p = h.requiresGrad(true);
                }
                homed.put(e.getKey(), p);
            }
            try (HostOffloadAdamW a = HostOffloadAdamW.builder(onDevice, CONFIG).bucketElements(BUCKET).moments(moments)
                    .gradients(HostOffloadAdamW.Gradients.STREAMED).build();
                 HostOffloadAdamW b = HostOffloadAdamW.builder(homed, CONFIG).bucketElements(BUCKET).moments(moments)
                         .gradients(HostOffloadAdamW.Gradients.STREAMED).build()) {
                for (int t = 1; t <= 3; t++) {
                    double[][] g = randomValues(rnd, 1.0);
                    step(a, onDevice, g);
                    step(b, homed, g);
                    assertWeightsEqual(values(onDevice), values(homed), moments + " step " + t);
                    assertEquals(bits(a.state()), bits(b.state()), moments + " step " + t + ": the same state");
                }
            }
        }
        MetaBackend meta = MetaBackend.instance();
        try (Scope scope = Scope.open("meta", MemoryCategory.WEIGHTS)) {
            SequencedMap<String, Tensor> p = new LinkedHashMap<>();
            p.put("w", Tensor.zeros(Shape.of(1000, 300), DType.BF16, Device.META, Placement.HOST_MAPPED).requiresGrad(true));
            MemoryStats before = meta.memoryStats();
            try (HostOffloadAdamW opt = HostOffloadAdamW.builder(p, CONFIG).moments(moments).gradients(HostOffloadAdamW.Gradients.STREAMED).build()) {
                assertEquals(before.host().allocated(MemoryCategory.WEIGHTS), meta.memoryStats().host().allocated(MemoryCategory.WEIGHTS),
                        "no bf16 copy of host-resident weights");
                assertTrue(opt.state().containsKey("w.master"), "the master is still checkpointed");
            }
        }
    }

    /** On meta: the device holds the parameters and the gradient buffer only; the state is counted as host memory. */
    @Test
    void theStateIsHostMemoryAndTheDeviceHoldsNoneOfIt() {
        MetaBackend meta = MetaBackend.instance();
        try (Scope scope = Scope.open("meta", MemoryCategory.WEIGHTS)) {
            SequencedMap<String, Tensor> p = new LinkedHashMap<>();
            p.put("w", Tensor.zeros(Shape.of(1000, 300), DType.BF16, Device.META).requiresGrad(true));
            p.put("b", Tensor.zeros(Shape.of(1000), DType.BF16, Device.META).requiresGrad(true));
            MemoryStats before = meta.memoryStats();
            try (HostOffloadAdamW opt = HostOffloadAdamW.builder(p, CONFIG).build()) {
                MemoryStats after = meta.memoryStats();
                long flat = opt.gradientBuffers().getFirst().layout().numel();
                assertEquals(300_032 + 1024, flat, "each entry starts at a multiple of 256 elements");
                assertEquals(before.allocated(MemoryCategory.OPTIMIZER), after.allocated(MemoryCategory.OPTIMIZER), "no optimizer state on the device");
                assertEquals(before.allocated(MemoryCategory.GRADIENTS) + (2 * flat + 511) / 512 * 512, after.allocated(MemoryCategory.GRADIENTS),
                        "the bf16 gradient buffer (one block, rounded to 512 bytes)");
                assertEquals(before.host().allocated(MemoryCategory.OPTIMIZER) + 8 * flat, after.host().allocated(MemoryCategory.OPTIMIZER),
                        "fp32 moments on the host");
                assertEquals(before.host().allocated(MemoryCategory.MASTER_WEIGHTS) + 4 * flat, after.host().allocated(MemoryCategory.MASTER_WEIGHTS),
                        "the fp32 master on the host, on its own line");
                assertEquals(before.host().allocated(MemoryCategory.GRADIENTS) + 2 * flat, after.host().allocated(MemoryCategory.GRADIENTS));
                assertEquals(before.host().allocated(MemoryCategory.WEIGHTS) + 2 * flat, after.host().allocated(MemoryCategory.WEIGHTS));
                for (Tensor t : opt.state().values()) {
                    assertEquals(Placement.HOST_MAPPED, t.placement(), t.describe());
                }
                opt.step();
                opt.zeroGrad();
                assertEquals(1, opt.steps());
            }
        }
    }

    @Test
    void unsupportedParametersAndMismatchedCheckpointsAreRefused() {
        try (Scope scope = Scope.open("refused")) {
            SequencedMap<String, Tensor> f16 = new LinkedHashMap<>();
            f16.put("x", Tensor.zeros(Shape.of(4), DType.F16, Device.CPU).requiresGrad(true));
            assertThrows(DTypeException.class, () -> HostOffloadAdamW.builder(f16, CONFIG).build());
            SequencedMap<String, Tensor> mixed = new LinkedHashMap<>();
            mixed.put("x", Tensor.zeros(Shape.of(4), DType.F32, Device.CPU).requiresGrad(true));
            mixed.put("y", Tensor.zeros(Shape.of(4), DType.F32, Device.META).requiresGrad(true));
            assertThrows(IllegalArgumentException.class, () -> HostOffloadAdamW.builder(mixed, CONFIG).build());
            assertThrows(IllegalArgumentException.class, () -> HostOffloadAdamW.builder(f16, CONFIG).bucketElements(0));
            SequencedMap<String, Tensor> ok = new LinkedHashMap<>();
            ok.put("x", Tensor.zeros(Shape.of(4), DType.F32, Device.CPU).requiresGrad(true));
            try (HostOffloadAdamW opt = HostOffloadAdamW.builder(ok, CONFIG).build()) {
                ShapeException e = assertThrows(ShapeException.class,
                        () -> opt.restore(Map.of("y.exp_avg", Tensor.zeros(Shape.of(4), DType.F32, Device.CPU)), 1));
                assertTrue(e.getMessage().contains("x.exp_avg"), e.getMessage());
                assertThrows(ShapeException.class, () -> opt.restore(Map.of(
                        "x.exp_avg", Tensor.zeros(Shape.of(5), DType.F32, Device.CPU),
                        "x.exp_avg_sq", Tensor.zeros(Shape.of(4), DType.F32, Device.CPU)), 1));
            }
        }
    }

    // ---------------------------------------------------------------- comparisons

    /**
     * Each state element's magnitude so far, and for {@code exp_avg} its gradients' too: torch's lerp of m towards g
     * can cancel, so its rounding is relative to its operands, not to its result.
     */
    static final class Scales {
        private final Map<String, double[]> max = new LinkedHashMap<>();

        /** Takes in a state (before or after a step) and the step's gradients (parameter k's in {@code grads[k]}, or null). */
        void observe(Map<String, Tensor> state, double[][] grads) {
            for (Map.Entry<String, Tensor> e : state.entrySet()) {
                float[] x = e.getValue().toFloatArray();
                double[] m = max.computeIfAbsent(e.getKey(), k -> new double[x.length]);
                double[] g = grads != null && e.getKey().endsWith(".exp_avg")
                        ? grads[Integer.parseInt(e.getKey().substring(0, e.getKey().indexOf('.')))] : null;
                for (int i = 0; i < x.length; i++) {
                    m[i] = Math.max(m[i], Math.abs(x[i]));
                    if (g != null) {
                        m[i] = Math.max(m[i], Math.abs(g[i]));
                    }
                }
            }
        }

        double of(String key, int i) {
            double[] m = max.get(key);
            return m == null ? 0 : m[i];
        }
    }

    /**
     * State within fp32 rounding of the double reference, accumulated over {@code steps} steps: per step a few ulps of
     * the element's magnitude (its operands' for the first moment, {@link Scales}), and 1e-5 of the learning rate for
     * the master's update term (the moments', the root's and the quotient's roundings, relative to an update of at most
     * a few learning rates).
     */
    static void assertClose(Map<String, Tensor> expected, Map<String, Tensor> actual, int steps, Scales scales, String what) {
        assertEquals(expected.keySet(), actual.keySet(), what);
        for (Map.Entry<String, Tensor> e : expected.entrySet()) {
            float[] x = e.getValue().toFloatArray();
            float[] y = actual.get(e.getKey()).toFloatArray();
            boolean master = e.getKey().endsWith(".master");
            for (int i = 0; i < x.length; i++) {
                double magnitude = Math.max(Math.max(Math.abs(x[i]), Math.abs(y[i])), scales.of(e.getKey(), i));
                double tolerance = steps * (4 * Math.ulp((float) magnitude) + (master ? 1e-5 * CONFIG.lr() : 0));
                if (!(Math.abs(x[i] - y[i]) <= tolerance)) {
                    fail(what + ": " + e.getKey() + "[" + i + "] " + x[i] + " against " + y[i] + " (tolerance " + tolerance + ")");
                }
            }
        }
    }

    /**
     * The parameters after {@code steps} updates: fp32 within the master's tolerance; bf16 within the master's absolute
     * tolerance ({@link #assertClose}'s 1e-5 of the learning rate a step) plus one bf16 step, since two masters that far
     * apart may round to bf16 values that far apart and on either side (a weight near zero, where a bf16 step is far
     * below the update's rounding, differs by many bf16 steps: 1.9e-9 at -7.8e-8 after 4 steps, seed 146903551756).
     */
    static void assertWeightsClose(SequencedMap<String, Tensor> expected, SequencedMap<String, Tensor> actual, DType dtype, int steps, String what) {
        List<Tensor> xs = List.copyOf(expected.values());
        List<Tensor> ys = List.copyOf(actual.values());
        for (int k = 0; k < xs.size(); k++) {
            float[] x = xs.get(k).toFloatArray();
            float[] y = ys.get(k).toFloatArray();
            for (int i = 0; i < x.length; i++) {
                double magnitude = Math.max(Math.abs(x[i]), Math.abs(y[i]));
                double tolerance = dtype == DType.BF16
                        ? Math.scalb(Math.ulp((float) magnitude), 16) + steps * (4 * Math.ulp((float) magnitude) + 1e-5 * CONFIG.lr())
                        : 20 * Math.ulp(Math.abs(x[i])) + 5e-5 * CONFIG.lr();
                if (!(Math.abs(x[i] - y[i]) <= tolerance)) {
                    fail(what + ": parameter " + k + "[" + i + "] " + x[i] + " against " + y[i] + " (tolerance " + tolerance + ")");
                }
            }
        }
    }

    /** The parameters hold the host's master: itself for fp32, rounded to nearest even for bf16. */
    private static void assertWeightsAreTheMaster(SequencedMap<String, Tensor> params, HostOffloadAdamW opt, DType dtype) {
        GradientBuffer grads = opt.gradientBuffers().getFirst();
        FlatLayout layout = grads.layout();
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            float[] w = e.getValue().toFloatArray();
            float[] master = dtype == DType.BF16 ? opt.state().get(e.getKey() + ".master").toFloatArray() : null;
            if (master != null) {
                for (int i = 0; i < w.length; i++) {
                    assertEquals(Numerics.bf16ToFloat(Numerics.floatToBf16(master[i])), w[i], e.getKey() + "[" + i + "]");
                }
            }
        }
        assertEquals(params.size(), layout.entries().size());
    }

    static List<float[]> values(SequencedMap<String, Tensor> params) {
        return params.values().stream().map(Tensor::toFloatArray).toList();
    }

    private static double[][] doubles(SequencedMap<String, Tensor> params) {
        return params.values().stream().map(Tensor::toDoubleArray).toArray(double[][]::new);
    }

    static void assertWeightsEqual(List<float[]> expected, List<float[]> actual, String what) {
        for (int k = 0; k < expected.size(); k++) {
            assertArrayEquals(expected.get(k), actual.get(k), what + ", parameter " + k);
        }
    }

    /** Each state tensor's bits, to compare exactly. */
    static Map<String, List<Integer>> bits(Map<String, Tensor> state) {
        Map<String, List<Integer>> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : state.entrySet()) {
            List<Integer> b = new ArrayList<>();
            for (float f : e.getValue().toFloatArray()) {
                b.add(Float.floatToRawIntBits(f));
            }
            out.put(e.getKey(), b);
        }
        return out;
    }

    /** A checkpoint: copies on the cpu, independent of the optimizer's buffers. */
    static Map<String, Tensor> copies(Map<String, Tensor> state) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : state.entrySet()) {
            out.put(e.getKey(), e.getValue().to(Device.CPU).copy());
        }
        return out;
    }
}
