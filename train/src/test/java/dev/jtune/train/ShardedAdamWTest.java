package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.AdamW8bit;
import dev.jtune.engine.optim.HostOffloadAdamW;
import dev.jtune.engine.optim.Optimizer;
import dev.jtune.engine.optim.ParamGroup;
import dev.jtune.engine.optim.ShardedAdamW;
import dev.jtune.engine.Placement;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 16's ZeRO stage 1 on the cpu, through the in-process stand-in for NCCL: N ranks of {@link ShardedAdamW}, each
 * holding 1/N of the optimizer state, give every rank the parameters that one {@link AdamW} gives, bit for bit, step
 * after step (the same kernel arithmetic per element; the all-gathers move bf16 and fp32 values exactly); their
 * gathered state is AdamW's; and a sharded optimizer of any size resumes from AdamW's state and goes on as AdamW does.
 * Parameters of two dtypes (two flat groups, the bf16 one through a master copy) and two parameter groups, with shard
 * boundaries inside parameters and, at three ranks, an empty shard.
 */
class ShardedAdamWTest {
    private static final int STEPS = 3;
    private static final AdamW.Config CONFIG = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.1);
    private static final ParamGroup NO_DECAY = new ParamGroup("no decay", 0.5, false);
    private static final ParamGroup.Assignment GROUPS = name -> name.startsWith("norm") ? NO_DECAY : ParamGroup.DEFAULT;
    private static final long SEED = 1601; // fixed: every rank and the reference draw the same values

    /** name -> shape and dtype, in order: 15 + 700 fp32 elements (1,024 in the flat layout), 600 + 40 bf16, 9 fp32 without decay. */
    private static SequencedMap<String, Tensor> parameters() {
        SequencedMap<String, Tensor> p = new LinkedHashMap<>();
        p.put("a", init(Shape.of(3, 5), DType.F32, 1));
        p.put("b", init(Shape.of(700), DType.F32, 2));
        p.put("c", init(Shape.of(2, 300), DType.BF16, 3));
        p.put("d", init(Shape.of(40), DType.BF16, 4));
        p.put("norm", init(Shape.of(9), DType.F32, 5));
        return p;
    }

    private static Tensor init(Shape s, DType dtype, int k) {
        return Tensor.randn(s, DType.F32, Device.CPU, SEED + k).cast(dtype).requiresGrad(true);
    }

    /** Step {@code step}'s gradients (the same on every rank: the trainer's all-reduce has summed them). */
    private static void setGradients(SequencedMap<String, Tensor> params, int step) {
        int k = 0;
        for (Tensor p : params.values()) {
            Ops.copyInto(Tensor.randn(p.shape(), DType.F32, Device.CPU, SEED + 100L * step + k++).cast(p.dtype()), p.grad());
        }
    }

    private static Map<String, float[]> values(Map<String, Tensor> tensors) {
        Map<String, float[]> out = new LinkedHashMap<>();
        tensors.forEach((n, t) -> out.put(n, t.toFloatArray()));
        return out;
    }

    /** What one run gives: the parameters after each step, and the state after the last. */
    record Run(List<Map<String, float[]>> params, Map<String, float[]> state) {
    }

    private static Run train(Function<SequencedMap<String, Tensor>, Optimizer> optimizer, Map<String, Tensor> resumeFrom, long resumeSteps) {
        return train(ShardedAdamWTest::parameters, optimizer, resumeFrom, resumeSteps);
    }

    private static Run train(java.util.function.Supplier<SequencedMap<String, Tensor>> parameters, Function<SequencedMap<String, Tensor>, Optimizer> optimizer,
                             Map<String, Tensor> resumeFrom, long resumeSteps) {
        try (Scope s = Scope.open("run")) {
            SequencedMap<String, Tensor> params = parameters.get();
            Optimizer opt = optimizer.apply(params);
            if (resumeFrom != null) {
                opt.restore(resumeFrom, resumeSteps);
            }
            List<Map<String, float[]>> after = new ArrayList<>();
            for (int step = 1; step <= STEPS; step++) {
                setGradients(params, step);
                opt.step();
                opt.zeroGrad();
                after.add(values(params));
            }
            return new Run(after, values(opt.state()));
        }
    }

    /** One AdamW step's per-parameter state (kept in the current scope): what a checkpoint holds, to resume from. */
    private static Map<String, Tensor> adamWStateAfterOneStep() {
        Map<String, Tensor> saved = new LinkedHashMap<>();
        try (Scope s = Scope.open("first run")) {
            SequencedMap<String, Tensor> params = parameters();
            AdamW first = new AdamW(params, CONFIG, Placement.DEVICE, GROUPS);
            setGradients(params, 7);
            first.step();
            for (Map.Entry<String, Tensor> e : first.state().entrySet()) {
                saved.put(e.getKey(), s.keep(e.getValue().copy()));
            }
        }
        return saved;
    }

    private static List<Run> ranks(int n, Map<String, Tensor> resumeFrom, long resumeSteps) throws Exception {
        return new InProcessWorld(n, Duration.ofSeconds(60)).run(rank -> train(p -> ShardedAdamW.builder(p, CONFIG, rank).groups(GROUPS).build(), resumeFrom, resumeSteps));
    }

    private static void assertSame(Run expected, Run got, String what) {
        for (int step = 0; step < STEPS; step++) {
            for (Map.Entry<String, float[]> e : expected.params().get(step).entrySet()) {
                assertArrayEquals(e.getValue(), got.params().get(step).get(e.getKey()), what + ": " + e.getKey() + " after step " + (step + 1));
            }
        }
        assertEquals(expected.state().keySet().stream().toList(), got.state().keySet().stream().toList(), what + ": the state's names, in order");
        for (Map.Entry<String, float[]> e : expected.state().entrySet()) {
            assertArrayEquals(e.getValue(), got.state().get(e.getKey()), what + ": state " + e.getKey());
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void shardedRanksStepAsOneAdamW(int n) throws Exception {
        System.out.println("seed " + SEED + ", " + n + " rank(s)");
        Run one = train(p -> new AdamW(p, CONFIG, Placement.DEVICE, GROUPS), null, 0);
        List<Run> runs = ranks(n, null, 0);
        for (int r = 0; r < n; r++) {
            assertSame(one, runs.get(r), "rank " + r + " of " + n);
        }
    }

    /** The paged (host-mapped) state, sharded, steps as AdamW's paged state does. */
    @org.junit.jupiter.api.Test
    void pagedShardsStepAsOnePagedAdamW() throws Exception {
        Run one = train(p -> new AdamW(p, CONFIG, Placement.HOST_MAPPED, GROUPS), null, 0);
        List<Run> runs = new InProcessWorld(2, Duration.ofSeconds(60)).run(rank -> train(p -> ShardedAdamW.builder(p, CONFIG, rank).groups(GROUPS)
                .state(ShardedAdamW.State.PAGED).build(), null, 0));
        for (int r = 0; r < 2; r++) {
            assertSame(one, runs.get(r), "paged rank " + r);
        }
    }

    /** One rank's {@code --offload_optimizer cpu}: the host-offloaded AdamW, its update on the host's cores. */
    private static Optimizer hostOffloaded(SequencedMap<String, Tensor> p) {
        return HostOffloadAdamW.builder(p, CONFIG).groups(GROUPS).moments(HostOffloadAdamW.Moments.FP32)
                .gradients(HostOffloadAdamW.Gradients.DEVICE_BUFFER).build();
    }

    /**
     * The state on the host, stepped by the host's cores ({@code --offload_optimizer cpu} with ZeRO): N ranks step as the
     * one-rank host-offloaded AdamW does (the same host arithmetic, {@code HostAdamW}; on the cpu the device kernel's
     * fp32 differs from it in the last bit), and resume from AdamW's state as it does (the fp32 parameters' master
     * comes from the parameters).
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void hostSteppedShardsStepAsOneHostOffloadedAdamW(int n) throws Exception {
        Run one = train(ShardedAdamWTest::hostOffloaded, null, 0);
        List<Run> runs = new InProcessWorld(n, Duration.ofSeconds(60)).run(rank -> train(p -> ShardedAdamW.builder(p, CONFIG, rank).groups(GROUPS)
                .state(ShardedAdamW.State.HOST).build(), null, 0));
        for (int r = 0; r < n; r++) {
            assertSame(one, runs.get(r), "host-stepped rank " + r + " of " + n);
        }
        try (Scope outer = Scope.open("saved state")) {
            Map<String, Tensor> saved = adamWStateAfterOneStep();
            Run resumed = train(ShardedAdamWTest::hostOffloaded, saved, 1);
            List<Run> hosted = new InProcessWorld(n, Duration.ofSeconds(60)).run(rank -> train(p -> ShardedAdamW.builder(p, CONFIG, rank).groups(GROUPS)
                    .state(ShardedAdamW.State.HOST).build(), saved, 1));
            for (int r = 0; r < n; r++) {
                assertSame(resumed, hosted.get(r), "host-stepped rank " + r + " of " + n + " resumed");
            }
        }
    }

    /**
     * ZeRO-Offload's delayed step, sharded: each step applies the last step's host update (gathering its weights) and
     * starts this step's on a thread of its own; N ranks step as the one-rank delayed host optimizer does, bit for bit,
     * the weights one update stale alike after each step, and their state (the pending update applied first) is its.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void delayedHostShardsStepAsTheDelayedHostOptimizer(int n) throws Exception {
        Run one = train(p -> HostOffloadAdamW.builder(p, CONFIG).groups(GROUPS).moments(HostOffloadAdamW.Moments.FP32)
                .schedule(HostOffloadAdamW.Schedule.DELAYED).build(), null, 0);
        List<Run> runs = new InProcessWorld(n, Duration.ofSeconds(60)).run(rank -> train(p -> ShardedAdamW.builder(p, CONFIG, rank).groups(GROUPS)
                .state(ShardedAdamW.State.HOST).schedule(HostOffloadAdamW.Schedule.DELAYED).build(), null, 0));
        for (int r = 0; r < n; r++) {
            assertSame(one, runs.get(r), "delayed host rank " + r + " of " + n);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void aShardedOptimizerResumesFromAdamWsStateAsAdamWDoes(int n) throws Exception {
        try (Scope outer = Scope.open("saved state")) {
            Map<String, Tensor> saved = adamWStateAfterOneStep();
            Run resumed = train(p -> new AdamW(p, CONFIG, Placement.DEVICE, GROUPS), saved, 1);
            List<Run> runs = ranks(n, saved, 1);
            for (int r = 0; r < n; r++) {
                assertSame(resumed, runs.get(r), "rank " + r + " of " + n + " resumed");
            }
        }
    }

    /**
     * For the 8-bit state: two parameters of at least 4,096 elements (8-bit moments; fp32 5,000, bf16 70 x 75 = 5,250,
     * both ending inside a block), small ones of both dtypes (fp32 moments, decayed after the step), one without decay.
     */
    private static SequencedMap<String, Tensor> eightBitParameters() {
        SequencedMap<String, Tensor> p = new LinkedHashMap<>();
        p.put("a", init(Shape.of(3, 5), DType.F32, 1));
        p.put("big", init(Shape.of(5000), DType.F32, 11));
        p.put("wide", init(Shape.of(70, 75), DType.BF16, 12));
        p.put("d", init(Shape.of(40), DType.BF16, 4));
        p.put("norm", init(Shape.of(9), DType.F32, 5));
        return p;
    }

    /**
     * ZeRO stage 1 of bitsandbytes' 8-bit AdamW: N ranks (parts starting on the 256-element blocks, so each rank's
     * blocks are the whole layout's) give every rank {@link AdamW8bit}'s parameters bit for bit, step after step, and
     * their gathered state is its state (codes, block maxima, fp32 moments of the small parameters, master copies);
     * resumed from its state after a step, they go on as it does.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void eightBitShardsStepAsOneAdamW8bit(int n) throws Exception {
        Function<SequencedMap<String, Tensor>, Optimizer> one = p -> new AdamW8bit(p, CONFIG, Placement.DEVICE, GROUPS);
        Run expected = train(ShardedAdamWTest::eightBitParameters, one, null, 0);
        List<Run> runs = new InProcessWorld(n, Duration.ofSeconds(60)).run(rank -> train(ShardedAdamWTest::eightBitParameters,
                p -> ShardedAdamW.builder(p, CONFIG, rank).groups(GROUPS).moments(ShardedAdamW.Moments.BLOCKWISE_8BIT).build(), null, 0));
        for (int r = 0; r < n; r++) {
            assertSame(expected, runs.get(r), "8-bit rank " + r + " of " + n);
        }
        assertTrue(expected.state().containsKey("wide.exp_avg.absmax") && expected.state().containsKey("a.exp_avg"),
                "8-bit and fp32 moments both: " + expected.state().keySet());
        try (Scope outer = Scope.open("saved 8-bit state")) {
            Map<String, Tensor> saved = new LinkedHashMap<>();
            try (Scope s = Scope.open("first run")) {
                SequencedMap<String, Tensor> params = eightBitParameters();
                AdamW8bit first = new AdamW8bit(params, CONFIG, Placement.DEVICE, GROUPS);
                setGradients(params, 7);
                first.step();
                first.state().forEach((k, v) -> saved.put(k, s.keep(v.copy())));
            }
            Run resumed = train(ShardedAdamWTest::eightBitParameters, one, saved, 1);
            List<Run> sharded = new InProcessWorld(n, Duration.ofSeconds(60)).run(rank -> train(ShardedAdamWTest::eightBitParameters,
                    p -> ShardedAdamW.builder(p, CONFIG, rank).groups(GROUPS).moments(ShardedAdamW.Moments.BLOCKWISE_8BIT).build(), saved, 1));
            for (int r = 0; r < n; r++) {
                assertSame(resumed, sharded.get(r), "8-bit rank " + r + " of " + n + " resumed");
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void eachRankHoldsItsShareOfTheState(int n) throws Exception {
        InProcessWorld world = new InProcessWorld(1, Duration.ofSeconds(5));
        try (Scope s = Scope.open("lengths")) {
            // the groups' flat layouts: fp32 (a, b) 1,024 elements, bf16 (c, d) 1,024, fp32 without decay (norm) 256
            List<Long> whole = ShardedAdamW.builder(parameters(), CONFIG, world.rank(0)).groups(GROUPS).build().shardLengths();
            assertEquals(List.of(1024L, 1024L, 256L), whole);
        }
        List<List<Long>> lengths = new InProcessWorld(n, Duration.ofSeconds(60)).run(rank -> {
            try (Scope s = Scope.open("rank")) {
                return ShardedAdamW.builder(parameters(), CONFIG, rank).groups(GROUPS).build().shardLengths();
            }
        });
        for (List<Long> mine : lengths) {
            long[] wholeLengths = {1024, 1024, 256};
            for (int g = 0; g < mine.size(); g++) {
                long expected = Math.max(256, (Math.ceilDiv(wholeLengths[g], n) + 255) / 256 * 256);
                assertEquals(expected, mine.get(g), "group " + g + "'s shard at " + n + " ranks");
                assertTrue(mine.get(g) * n < wholeLengths[g] + 256L * n, "a rank holds about 1/" + n + " of group " + g);
            }
        }
    }
}
