package dev.jtune.train;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.ShardedGradients;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.GradClip;
import dev.jtune.engine.optim.ParamGroup;
import dev.jtune.engine.optim.ShardedAdamW;
import dev.jtune.engine.Placement;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ZeRO stage 2 over in-process ranks: {@link ShardedGradients} leaves each rank the sum over every rank's micro-batches
 * of exactly its parts of the gradients (up to float reassociation), with buckets reduced during backward (from the
 * first: a parameter is complete after one contribution until the counts are learned), a rank's late contributions
 * agreed and reduced, and a rank with fewer micro-batches meeting the
 * others in empty rounds; {@link ShardedAdamW} over those shards steps as one AdamW over the summed gradients, clips by
 * the global norm, and saves AdamW's state.
 */
class ShardedGradientsRanksTest {
    private static final int N = 48; // [48, 48] weights: 2,304 elements, so every rank of 2 or 3 owns part of each
    private static final AdamW.Config CONFIG = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.1);

    /** x w0 -> square -> w1 (checkpointed) -> square -> w2 -> w3, plus sum(x w0), and with {@code extra} sum(x^2 w0); b a bias. */
    private static Tensor loss(Tensor x, SequencedMap<String, Tensor> w, boolean extra) {
        Tensor h = square(x.matmul(w.get("w0")));
        h = Autograd.checkpoint(t -> square(t[0].matmul(w.get("w1"))), h);
        Tensor out = h.matmul(w.get("w2")).add(w.get("b").cast(DType.F32)).matmul(w.get("w3")).reshape(-1).sum(0)
                .add(x.matmul(w.get("w0")).reshape(-1).sum(0));
        return extra ? out.add(x.mul(x).matmul(w.get("w0")).reshape(-1).sum(0)) : out;
    }

    private static Tensor square(Tensor t) {
        return t.mul(t);
    }

    /** Four [48, 48] fp32 weights (one flat group) and a [48] bf16 bias (a group of its own, through AdamW's master copy). */
    private static SequencedMap<String, Tensor> weights() {
        SequencedMap<String, Tensor> w = new LinkedHashMap<>();
        for (int i = 0; i < 4; i++) {
            w.put("w" + i, Ops.scale(Tensor.randn(Shape.of(N, N), DType.F32, Device.CPU, 40 + i), 0.3).requiresGrad(true));
        }
        w.put("b", Ops.scale(Tensor.randn(Shape.of(N), DType.F32, Device.CPU, 45), 0.1).cast(DType.BF16).requiresGrad(true));
        return w;
    }

    /** Micro-batch m's input (the same whichever rank runs it). */
    private static Tensor input(int m) {
        return Tensor.randn(Shape.of(4, N), DType.F32, Device.CPU, 70 + m);
    }

    /** Whether micro-batch m of step {@code step} uses w0 once more than the first step taught (a late contribution). */
    private static boolean extra(int step, int m) {
        return step == 2 && m == 0;
    }

    /** One device's gradients over every micro-batch of a step, per parameter. */
    private static Map<String, float[]> plain(int step, int micro) {
        try (Scope s = Scope.open("plain")) {
            SequencedMap<String, Tensor> w = weights();
            for (int m = 0; m < micro; m++) {
                loss(input(m), w, extra(step, m)).backward();
            }
            Map<String, float[]> out = new LinkedHashMap<>();
            w.forEach((n, t) -> out.put(n, t.grad().toFloatArray()));
            return out;
        }
    }

    /** Bucket bytes small enough that each weight is a bucket of its own. */
    private static final long BUCKET = N * N * 4;

    /**
     * {@code ranks} ranks run a step's {@code micro} micro-batches (rank r: r, r + ranks, ...), reducing after each
     * backward and in empty rounds up to ceil(micro / ranks); returns each rank's gradient shard of the fp32 group and
     * the number of buckets reduced during its last backward.
     */
    private static List<Object[]> shards(int ranks, int micro, int steps) throws Exception {
        return new InProcessWorld(ranks, Duration.ofMinutes(1)).run(world -> {
            try (Scope s = Scope.open("rank " + world.rank())) {
                SequencedMap<String, Tensor> w = weights();
                SequencedMap<String, Tensor> fp32 = new LinkedHashMap<>(w);
                fp32.remove("b");
                SequencedMap<String, Tensor> bias = new LinkedHashMap<>();
                bias.put("b", w.get("b"));
                try (ShardedGradients g = new ShardedGradients(world, List.of(fp32, bias), BUCKET, List.copyOf(w.values()))) {
                    int early = 0;
                    for (int step = 1; step <= steps; step++) {
                        g.zero();
                        int rounds = 0;
                        for (int m = world.rank(); m < micro; m += ranks) {
                            loss(input(m), w, extra(step, m)).backward();
                            g.reduce();
                            early = g.reducedDuringBackward();
                            rounds++;
                        }
                        for (; rounds < Math.ceilDiv(micro, ranks); rounds++) {
                            g.reduce();
                        }
                        g.finish();
                    }
                    for (Tensor t : w.values()) {
                        assertEquals(null, t.grad(), "a parameter holds no gradient of its own under stage 2");
                    }
                    return new Object[] {g.groups().get(0).shard().toFloatArray(), g.groups().get(0).segments(), early, g.lateReductions()};
                }
            }
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void eachRankHoldsItsPartsOfTheSummedGradients(int ranks) throws Exception {
        int micro = 5; // 5 over 2 or 3 ranks: a rank has fewer micro-batches than another and meets it in an empty round
        List<Object[]> got = shards(ranks, micro, 2);
        Map<String, float[]> expected = plain(2, micro);
        // the fp32 group's layout: w0..w3 at 0, 2304, 4608, 6912, each a bucket: 1,280 elements a part at 2 ranks, 768 at 3
        for (int r = 0; r < ranks; r++) {
            float[] shard = (float[]) got.get(r)[0];
            @SuppressWarnings("unchecked")
            List<ShardedGradients.Segment> segments = (List<ShardedGradients.Segment>) got.get(r)[1];
            assertEquals(4, segments.size(), "one bucket a weight");
            for (ShardedGradients.Segment seg : segments) {
                String name = "w" + seg.start() / (N * N);
                float[] whole = expected.get(name);
                double num = 0;
                double den = 0;
                for (long e = seg.from(r); e < seg.to(r); e++) {
                    double want = whole[(int) (e - seg.start())];
                    double have = shard[(int) (seg.shardOffset() + e - seg.from(r))];
                    num += (have - want) * (have - want);
                    den += want * want;
                }
                for (long e = seg.to(r) - seg.from(r); e < seg.part(); e++) {
                    assertEquals(0f, shard[(int) (seg.shardOffset() + e)], "rank " + r + ": padding past its part of " + name + " stays zero");
                }
                assertTrue(den > 0, "rank " + r + " owns part of " + name);
                {
                    double rel = Math.sqrt(num / den);
                    System.out.printf(java.util.Locale.ROOT, "%d ranks, rank %d, %s: relative difference to one device's sum %.2e%n", ranks, r, name, rel);
                    assertTrue(rel < 1e-6, name + " on rank " + r + ": " + rel);
                }
            }
            assertTrue((int) got.get(r)[2] > 0 || r == ranks - 1 && micro % ranks != 0 && micro / ranks == 1,
                    "rank " + r + ": buckets reduced during its last backward, once the counts are learned");
            // w0's second use in the first backward (each parameter is taken as complete after one contribution until the
            // counts are learned), then rank 0's extra use in step 2: reduced again on every rank, each time
            assertEquals(2L, got.get(r)[3], "rank " + r + ": w0's bucket reduced again for late contributions");
        }
    }

    /** Stage 2's optimizer: 2 ranks x 2 micro-batches step as one AdamW over the 4 micro-batches, clipped by the global norm. */
    @Test
    void stageTwoStepsAsOneAdamWOverTheSummedGradients() throws Exception {
        int micro = 4;
        int steps = 3;
        double maxNorm = 5.0;
        long seed = 1601;
        System.out.println("seed " + seed + " (fixed inputs)");
        List<double[]> norms = new ArrayList<>();
        Map<String, float[]> one;
        Map<String, float[]> oneState;
        try (Scope s = Scope.open("one device")) {
            SequencedMap<String, Tensor> w = weights();
            AdamW adam = new AdamW(w, CONFIG, Placement.DEVICE, ParamGroup.Assignment.UNIFORM);
            double[] n = new double[steps];
            for (int step = 1; step <= steps; step++) {
                for (int m = 0; m < micro; m++) {
                    loss(input(m + 10 * step), w, false).backward();
                }
                n[step - 1] = GradClip.clipFlatGradNorm(adam.gradientBuffers(), maxNorm).value();
                adam.step();
                adam.zeroGrad();
            }
            norms.add(n);
            one = values(w);
            oneState = values(adam.state());
        }
        List<Object[]> ranks = new InProcessWorld(2, Duration.ofMinutes(1)).run(world -> {
            try (Scope s = Scope.open("rank " + world.rank())) {
                SequencedMap<String, Tensor> w = weights();
                ShardedAdamW opt = ShardedAdamW.builder(w, CONFIG, world).shardGradients(BUCKET, List.copyOf(w.values())).build();
                ShardedGradients g = opt.gradients().orElseThrow();
                double[] n = new double[steps];
                for (int step = 1; step <= steps; step++) {
                    for (int m = world.rank(); m < micro; m += 2) {
                        loss(input(m + 10 * step), w, false).backward();
                        g.reduce();
                    }
                    g.finish();
                    n[step - 1] = opt.clipHeldGradients(maxNorm).orElseThrow().value();
                    opt.step();
                    opt.zeroGrad();
                }
                Object[] out = {n, values(w), values(opt.state())};
                opt.close();
                return out;
            }
        });
        for (int r = 0; r < 2; r++) {
            double[] n = (double[]) ranks.get(r)[0];
            for (int step = 0; step < steps; step++) {
                System.out.printf(java.util.Locale.ROOT, "rank %d step %d: gradient norm %.7f (one device %.7f)%n", r, step + 1, n[step], norms.get(0)[step]);
                assertEquals(norms.get(0)[step], n[step], 1e-5 * norms.get(0)[step], "rank " + r + " step " + (step + 1) + ": the global norm");
            }
            assertTrue(norms.get(0)[0] > maxNorm, "the first step is clipped (the test covers clipping)");
            @SuppressWarnings("unchecked")
            Map<String, float[]> got = (Map<String, float[]>) ranks.get(r)[1];
            @SuppressWarnings("unchecked")
            Map<String, float[]> state = (Map<String, float[]>) ranks.get(r)[2];
            assertEquals(oneState.keySet(), state.keySet(), "AdamW's state names");
            for (var e : one.entrySet()) {
                double diff = worst(e.getValue(), got.get(e.getKey()));
                System.out.printf(java.util.Locale.ROOT, "rank %d %s: worst difference to one device's weights %.2e%n", r, e.getKey(), diff);
                assertTrue(diff < 1e-5, e.getKey() + ": " + diff);
            }
            assertArrayEquals(((float[]) ((Map<?, ?>) ranks.get(0)[1]).get("w0")), got.get("w0"), 0f, "every rank's weights are one");
            for (var e : oneState.entrySet()) {
                double scale = 1e-6 + worst(e.getValue(), new float[e.getValue().length]);
                assertTrue(worst(e.getValue(), state.get(e.getKey())) <= 1e-3 * scale, "state " + e.getKey());
            }
        }
    }

    /**
     * Stage 2 resumes from AdamW's checkpointed state: one device's AdamW runs step 1 and saves its weights and state;
     * 2 sharded ranks restore them (each its parts) and run steps 2-3 as the one device goes on (within 1e-5).
     */
    @Test
    void stageTwoResumesFromAdamWsState() throws Exception {
        int micro = 4;
        Map<String, float[]> one;
        try (Scope outer = Scope.open("saved")) {
            Map<String, Tensor> savedState = new LinkedHashMap<>();
            Map<String, Tensor> savedWeights = new LinkedHashMap<>();
            try (Scope s = Scope.open("one device")) {
                SequencedMap<String, Tensor> w = weights();
                AdamW adam = new AdamW(w, CONFIG, Placement.DEVICE, ParamGroup.Assignment.UNIFORM);
                for (int step = 1; step <= 3; step++) {
                    for (int m = 0; m < micro; m++) {
                        loss(input(m + 10 * step), w, false).backward();
                    }
                    adam.step();
                    adam.zeroGrad();
                    if (step == 1) {
                        adam.state().forEach((n, t) -> savedState.put(n, s.keep(t.copy())));
                        w.forEach((n, t) -> savedWeights.put(n, s.keep(t.detach().copy())));
                    }
                }
                one = values(w);
            }
            List<Map<String, float[]>> ranks = new InProcessWorld(2, Duration.ofMinutes(1)).run(world -> {
                try (Scope s = Scope.open("rank " + world.rank())) {
                    SequencedMap<String, Tensor> w = weights();
                    try (Autograd.GradMode off = Autograd.noGrad()) {
                        w.forEach((n, t) -> Ops.copyInto(savedWeights.get(n), t));
                    }
                    ShardedAdamW opt = ShardedAdamW.builder(w, CONFIG, world).shardGradients(BUCKET, List.copyOf(w.values())).build();
                    opt.restore(savedState, 1);
                    for (int step = 2; step <= 3; step++) {
                        for (int m = world.rank(); m < micro; m += 2) {
                            loss(input(m + 10 * step), w, false).backward();
                            opt.gradients().orElseThrow().reduce();
                        }
                        opt.gradients().orElseThrow().finish();
                        opt.step();
                        opt.zeroGrad();
                    }
                    opt.close();
                    return values(w);
                }
            });
            for (int r = 0; r < 2; r++) {
                for (var e : one.entrySet()) {
                    double diff = worst(e.getValue(), ranks.get(r).get(e.getKey()));
                    System.out.printf(java.util.Locale.ROOT, "resumed rank %d %s: worst difference to one device's weights %.2e%n", r, e.getKey(), diff);
                    assertTrue(diff < 1e-5, "rank " + r + " " + e.getKey() + ": " + diff);
                }
            }
        }
    }

    private static Map<String, float[]> values(Map<String, Tensor> tensors) {
        Map<String, float[]> out = new LinkedHashMap<>();
        tensors.forEach((n, t) -> out.put(n, t.toFloatArray()));
        return out;
    }

    private static double worst(float[] a, float[] b) {
        double w = 0;
        for (int i = 0; i < a.length; i++) {
            w = Math.max(w, Math.abs((double) a[i] - b[i]));
        }
        return w;
    }
}
