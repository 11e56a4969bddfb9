package dev.jtune.engine.optim;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Random;
import java.util.SequencedMap;
import java.util.Set;
import java.util.function.BiFunction;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Parameter groups (torch's param_groups: a learning rate as a multiple of the scheduled one, weight decay on or off):
 * one optimizer over two groups steps each parameter exactly as an optimizer of that group's own learning rate and
 * decay would, for every optimizer the trainer builds (device AdamW, 8-bit AdamW, the host-offloaded AdamW with fp32
 * or 8-bit moments), on the cpu. Tensors of at least 4096 elements take the 8-bit path, smaller ones the fp32 one.
 */
class ParamGroupTest {
    private static final List<long[]> SHAPES = List.of(new long[] {64, 80}, new long[] {300}, new long[] {4097}, new long[] {17});
    private static final AdamW.Config CONFIG = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.1);
    /** Parameters "0" and "2": a quarter of the learning rate, no decay. */
    private static final ParamGroup SLOW = new ParamGroup("slow", 0.25, false);
    private static final Set<String> IN_SLOW = Set.of("0", "2");

    enum Kind {
        DEVICE_FP32((p, c) -> new AdamW(p, c), (p, c, g) -> new AdamW(p, c, Placement.DEVICE, g)),
        DEVICE_8BIT((p, c) -> new AdamW8bit(p, c), (p, c, g) -> new AdamW8bit(p, c, Placement.DEVICE, g)),
        HOST_FP32((p, c) -> HostOffloadAdamW.builder(p, c).bucketElements(1000).build(),
                (p, c, g) -> HostOffloadAdamW.builder(p, c).bucketElements(1000).groups(g).build()),
        HOST_8BIT((p, c) -> HostOffloadAdamW.builder(p, c).bucketElements(1024).moments(HostOffloadAdamW.Moments.BLOCKWISE_8BIT).build(),
                (p, c, g) -> HostOffloadAdamW.builder(p, c).bucketElements(1024).moments(HostOffloadAdamW.Moments.BLOCKWISE_8BIT).groups(g).build());

        final BiFunction<SequencedMap<String, Tensor>, AdamW.Config, Optimizer> plain;
        final Grouped grouped;

        Kind(BiFunction<SequencedMap<String, Tensor>, AdamW.Config, Optimizer> plain, Grouped grouped) {
            this.plain = plain;
            this.grouped = grouped;
        }

        interface Grouped {
            Optimizer build(SequencedMap<String, Tensor> params, AdamW.Config config, ParamGroup.Assignment groups);
        }
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void eachGroupStepsAsAnOptimizerOfItsOwnSettings(Kind kind) {
        long seed = Seeds.seed();
        Random rnd = Seeds.random(seed);
        double[][] init = HostOffloadAdamWTest.randomValues(SHAPES, rnd, 0.5);
        double[][][] grads = new double[3][][];
        for (int s = 0; s < grads.length; s++) {
            grads[s] = HostOffloadAdamWTest.randomValues(SHAPES, rnd, 1);
        }
        try (Scope scope = Scope.open("param groups")) {
            for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
                if (dtype == DType.BF16 && kind == Kind.DEVICE_FP32) {
                    continue; // AdamW over bf16 is FlatAdamWTest's; the grouping is the same code for any dtype
                }
                SequencedMap<String, Tensor> together = HostOffloadAdamWTest.params(SHAPES, init, dtype, Device.CPU);
                SequencedMap<String, Tensor> apart = HostOffloadAdamWTest.params(SHAPES, init, dtype, Device.CPU);
                SequencedMap<String, Tensor> slow = new LinkedHashMap<>();
                SequencedMap<String, Tensor> rest = new LinkedHashMap<>();
                apart.forEach((n, p) -> (IN_SLOW.contains(n) ? slow : rest).put(n, p));
                Optimizer grouped = kind.grouped.build(together, CONFIG, n -> IN_SLOW.contains(n) ? SLOW : ParamGroup.DEFAULT);
                Optimizer slowAlone = kind.plain.apply(slow, new AdamW.Config(CONFIG.lr() * SLOW.lrScale(), CONFIG.beta1(), CONFIG.beta2(), CONFIG.eps(), 0));
                Optimizer restAlone = kind.plain.apply(rest, CONFIG);
                for (double[][] g : grads) {
                    HostOffloadAdamWTest.step(grouped, together, g);
                    double[][] gs = {g[0], g[2]};
                    double[][] gr = {g[1], g[3]};
                    HostOffloadAdamWTest.step(slowAlone, slow, gs);
                    HostOffloadAdamWTest.step(restAlone, rest, gr);
                }
                grouped.flush();
                slowAlone.flush();
                restAlone.flush();
                for (String n : together.keySet()) {
                    assertArrayEquals(apart.get(n).toFloatArray(), together.get(n).toFloatArray(),
                            kind + " " + dtype + " parameter " + n + " (seed " + seed + ")");
                }
                for (Optimizer o : List.of(grouped, slowAlone, restAlone)) {
                    o.close();
                }
            }
        }
    }

    /** The groups do change the update: a parameter of the slow group moves less than the same one stepped as default. */
    @Test
    void aSlowerGroupMovesLess() {
        long seed = Seeds.seed();
        Random rnd = Seeds.random(seed);
        double[][] init = HostOffloadAdamWTest.randomValues(SHAPES, rnd, 0.5);
        double[][] g = HostOffloadAdamWTest.randomValues(SHAPES, rnd, 1);
        try (Scope scope = Scope.open("param groups")) {
            SequencedMap<String, Tensor> a = HostOffloadAdamWTest.params(SHAPES, init, DType.F32, Device.CPU);
            SequencedMap<String, Tensor> b = HostOffloadAdamWTest.params(SHAPES, init, DType.F32, Device.CPU);
            HostOffloadAdamWTest.step(new AdamW(a, CONFIG, Placement.DEVICE, n -> IN_SLOW.contains(n) ? SLOW : ParamGroup.DEFAULT), a, g);
            HostOffloadAdamWTest.step(new AdamW(b, CONFIG), b, g);
            float[] start = HostOffloadAdamWTest.params(SHAPES, init, DType.F32, Device.CPU).get("0").toFloatArray();
            double movedSlow = distance(start, a.get("0").toFloatArray());
            double movedDefault = distance(start, b.get("0").toFloatArray());
            // the first Adam step moves each element by about lr: a quarter of it, plus no decay
            assertNotEquals(movedDefault, movedSlow, "seed " + seed);
            org.junit.jupiter.api.Assertions.assertTrue(movedSlow < 0.3 * movedDefault, movedSlow + " vs " + movedDefault + " (seed " + seed + ")");
            assertArrayEquals(a.get("1").toFloatArray(), b.get("1").toFloatArray(), "a default parameter is stepped as before");
        }
    }

    @Test
    void aNegativeOrInfiniteScaleIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new ParamGroup("x", -1, true));
        assertThrows(IllegalArgumentException.class, () -> new ParamGroup("x", Double.POSITIVE_INFINITY, true));
        assertThrows(IllegalArgumentException.class, () -> new ParamGroup("x", Double.NaN, true));
    }

    private static double distance(float[] x, float[] y) {
        double s = 0;
        for (int i = 0; i < x.length; i++) {
            s += (x[i] - y[i]) * (double) (x[i] - y[i]);
        }
        return Math.sqrt(s);
    }
}
