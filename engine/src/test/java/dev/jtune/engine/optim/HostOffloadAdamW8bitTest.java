package dev.jtune.engine.optim;

import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.AdamW8bitParity;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The host-offloaded AdamW with 8-bit moments ({@link HostOffloadAdamW.Moments#BLOCKWISE_8BIT}) on the cpu backend,
 * against the device's {@link AdamW8bit} (whose cpu backend is the double reference): the same state names and order,
 * each step from the same state within the fp32 rule of the kernels ({@link AdamW8bitParity}), checkpoints restoring
 * across the two and a resumed run equal to the uninterrupted one bit for bit, and where its memory is counted.
 */
class HostOffloadAdamW8bitTest {
    /** Two 8-bit parameters (one ending in a short block), two small ones with fp32 state. */
    private static final List<long[]> SHAPES = List.of(new long[] {64, 70}, new long[] {3, 5}, new long[] {5000}, new long[] {17});
    private static final AdamW.Config CONFIG = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.1);
    /** Rounded up to whole blocks for the 8-bit groups (512): buckets cut through the first parameter. */
    private static final long BUCKET = 300;

    private final long seed = Seeds.seed();
    private final Random rnd = new Random(seed);

    private SequencedMap<String, Tensor> params(double[][] values, DType dtype) {
        return HostOffloadAdamWTest.params(SHAPES, values, dtype, Device.CPU);
    }

    private double[][] random(double scale) {
        return HostOffloadAdamWTest.randomValues(SHAPES, rnd, scale);
    }

    private static void step(Optimizer opt, SequencedMap<String, Tensor> params, double[][] grads) {
        HostOffloadAdamWTest.step(opt, params, grads);
    }

    private static HostOffloadAdamW host(SequencedMap<String, Tensor> params, HostOffloadAdamW.Gradients gradients) {
        return HostOffloadAdamW.builder(params, CONFIG).bucketElements(BUCKET).gradients(gradients)
                .moments(HostOffloadAdamW.Moments.BLOCKWISE_8BIT).build();
    }

    /**
     * Each step starts both optimizers from AdamW8bit's state and weights (restored into the host one, which is also
     * the cross-restore test), so a difference is that step's: block maxima within 1e-5, codes equal but for
     * neighbours at a midpoint (at most 0.1%), the fp32 state of the small tensors and every master within fp32
     * rounding, the weights within one bf16 step of each other.
     */
    @ParameterizedTest
    @CsvSource({"F32, DEVICE_BUFFER", "BF16, DEVICE_BUFFER", "BF16, STREAMED"})
    void eachStepFollowsAdamW8bit(DType dtype, HostOffloadAdamW.Gradients gradients) {
        String what = dtype + " " + gradients + " (seed " + seed + ")";
        try (Scope scope = Scope.open("eight-bit")) {
            double[][] init = random(0.1);
            SequencedMap<String, Tensor> a = params(init, dtype);
            SequencedMap<String, Tensor> b = params(init, dtype);
            AdamW8bit device = new AdamW8bit(a, CONFIG);
            long differing = 0;
            long codes = 0;
            try (HostOffloadAdamW host = host(b, gradients)) {
                assertEquals(List.copyOf(device.state().keySet()), List.copyOf(host.state().keySet()), "the same state names, in order");
                for (int t = 1; t <= 4; t++) {
                    for (String name : a.keySet()) {
                        Ops.copyInto(a.get(name), b.get(name));
                    }
                    Map<String, Tensor> start = HostOffloadAdamWTest.copies(device.state());
                    host.restore(start, device.steps());
                    double[][] g = random(Math.pow(10, -2 * rnd.nextDouble()));
                    step(device, a, g);
                    step(host, b, g);
                    String at = what + " step " + t;
                    Map<String, Tensor> x = device.state();
                    Map<String, Tensor> y = host.state();
                    for (String key : x.keySet()) {
                        float[] xs = x.get(key).toFloatArray();
                        float[] ys = y.get(key).toFloatArray();
                        if (key.endsWith(".q8")) {
                            codes += xs.length;
                            for (int i = 0; i < xs.length; i++) {
                                if (xs[i] != ys[i]) {
                                    differing++;
                                    assertEquals(xs[i], ys[i], 1.0, at + " " + key + "[" + i + "]: codes one step apart at most");
                                }
                            }
                        } else {
                            boolean relative = key.endsWith(".absmax");
                            // a master: fp32 rounding of the weight, and 1e-5 of the learning rate for the update term's
                            double update = key.endsWith(".master") ? 1e-5 * CONFIG.lr() : 0;
                            // an fp32 first moment is torch's lerp of m toward g, which can cancel: its rounding is its operands'
                            float[] old = key.endsWith(".exp_avg") ? start.get(key).toFloatArray() : null;
                            double[] grad = old != null ? g[Integer.parseInt(key.substring(0, key.indexOf('.')))] : null;
                            for (int i = 0; i < xs.length; i++) {
                                double magnitude = old == null ? Math.abs(xs[i]) : Math.max(Math.abs(xs[i]), Math.max(Math.abs(old[i]), Math.abs(grad[i])));
                                double tol = relative ? 1e-5 * Math.abs(xs[i]) : 4 * Math.ulp((float) magnitude) + update;
                                if (!(Math.abs(xs[i] - ys[i]) <= tol)) {
                                    fail(at + " " + key + "[" + i + "] " + xs[i] + " against " + ys[i] + " (tolerance " + tol + ")");
                                }
                            }
                        }
                    }
                    HostOffloadAdamWTest.assertWeightsClose(a, b, dtype, 1, at);
                }
                assertEquals(4, host.steps());
            }
            System.out.printf("host adamw8bit %s: %d of %d codes differ by one step%n", what, differing, codes);
            assertTrue(differing <= AdamW8bitParity.MAX_MISMATCH_SHARE * codes, what + ": " + differing + " of " + codes + " codes differ");
        }
    }

    /** A checkpoint of the host optimizer restores into a new one and into AdamW8bit exactly; the resumed run equals the uninterrupted one. */
    @Test
    void aResumedRunEqualsTheUninterruptedOneBitForBit() {
        try (Scope scope = Scope.open("resume")) {
            double[][] init = random(0.1);
            double[][][] grads = {random(1e-2), random(1e-2), random(1e-2), random(1e-2)};
            SequencedMap<String, Tensor> a = params(init, DType.BF16);
            try (HostOffloadAdamW host = host(a, HostOffloadAdamW.Gradients.STREAMED)) {
                for (int t = 0; t < 3; t++) {
                    step(host, a, grads[t]);
                }
                Map<String, Tensor> saved = HostOffloadAdamWTest.copies(host.state());
                double[][] weights = a.values().stream().map(Tensor::toDoubleArray).toArray(double[][]::new);
                SequencedMap<String, Tensor> b = params(weights, DType.BF16);
                SequencedMap<String, Tensor> c = params(weights, DType.BF16);
                AdamW8bit device = new AdamW8bit(c, CONFIG);
                device.restore(saved, host.steps());
                assertEquals(HostOffloadAdamWTest.bits(saved), HostOffloadAdamWTest.bits(device.state()), "AdamW8bit restores it exactly");
                try (HostOffloadAdamW resumed = host(b, HostOffloadAdamW.Gradients.STREAMED)) {
                    resumed.restore(saved, host.steps());
                    step(host, a, grads[3]);
                    step(resumed, b, grads[3]);
                    assertEquals(HostOffloadAdamWTest.bits(host.state()), HostOffloadAdamWTest.bits(resumed.state()), "resumed equals uninterrupted (seed " + seed + ")");
                    HostOffloadAdamWTest.assertWeightsEqual(HostOffloadAdamWTest.values(a), HostOffloadAdamWTest.values(b), "resumed equals uninterrupted");
                }
                SequencedMap<String, Tensor> d = params(weights, DType.BF16);
                try (HostOffloadAdamW fp32 = HostOffloadAdamW.builder(d, CONFIG).build()) {
                    assertThrows(RuntimeException.class, () -> fp32.restore(saved, 3), "fp32 moments do not take 8-bit state");
                }
            }
        }
    }

    /** On meta: 8-bit codes and block maxima on the host (about 2 bytes a parameter), nothing of the state on the device. */
    @Test
    void theEightBitStateIsAboutTwoBytesPerParameterOnTheHost() {
        MetaBackend meta = MetaBackend.instance();
        try (Scope scope = Scope.open("meta", MemoryCategory.WEIGHTS)) {
            SequencedMap<String, Tensor> p = new LinkedHashMap<>();
            p.put("w", Tensor.zeros(Shape.of(1000, 300), DType.BF16, Device.META).requiresGrad(true));
            p.put("b", Tensor.zeros(Shape.of(1000), DType.BF16, Device.META).requiresGrad(true));
            MemoryStats before = meta.memoryStats();
            try (HostOffloadAdamW opt = HostOffloadAdamW.builder(p, CONFIG).moments(HostOffloadAdamW.Moments.BLOCKWISE_8BIT).build()) {
                MemoryStats after = meta.memoryStats();
                long large = 300_032; // w's layout: a whole number of blocks
                long small = 1024;    // b's, fp32 moments
                assertEquals(before.allocated(MemoryCategory.OPTIMIZER), after.allocated(MemoryCategory.OPTIMIZER), "no optimizer state on the device");
                long state = after.host().allocated(MemoryCategory.OPTIMIZER) - before.host().allocated(MemoryCategory.OPTIMIZER);
                assertEquals(2 * large + 2 * 4 * (large / 256) + 8 * small, state, "codes, block maxima, and the small tensor's fp32 moments");
                assertTrue((double) state / 301_000 <= 2.1, "at most 2.1 bytes a parameter: " + (double) state / 301_000);
                for (Map.Entry<String, Tensor> e : opt.state().entrySet()) {
                    assertEquals(Placement.HOST_MAPPED, e.getValue().placement(), e.getKey());
                    assertEquals(e.getKey().endsWith(".q8") ? DType.U8 : DType.F32, e.getValue().dtype(), e.getKey());
                }
                opt.step();
                opt.zeroGrad();
            }
        }
    }

    @Test
    void codesRestoreOnlyIntoEightBitState() {
        try (Scope scope = Scope.open("refused")) {
            SequencedMap<String, Tensor> p = params(random(0.1), DType.F32);
            try (HostOffloadAdamW opt = host(p, HostOffloadAdamW.Gradients.DEVICE_BUFFER)) {
                Map<String, Tensor> state = new LinkedHashMap<>(HostOffloadAdamWTest.copies(opt.state()));
                state.put("0.exp_avg.q8", Tensor.zeros(Shape.of(64, 70), DType.F32, Device.CPU));
                assertThrows(DTypeException.class, () -> opt.restore(state, 1));
            }
        }
    }
}
