package dev.jtune.train;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.CollectiveException;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.dist.ShardedWeights;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.loop.RunIdentity;
import dev.jtune.train.loop.StepRecord;
import dev.jtune.train.loop.Trainable;
import dev.jtune.train.loop.Trainer;
import dev.jtune.train.loop.TrainerConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 16's data-parallel step on the cpu, through the in-process stand-in for NCCL: N ranks x accumulation k train
 * the embedded default (QLoRA, dropout on) as one rank x accumulation N k does: the same losses and gradient norms every
 * step (the ranks' sums only round differently: within 1e-5) and the same adapter weights after; the ranks' weights
 * equal each other bit for bit; only rank 0 writes files.
 */
class DataParallelTest {
    private static final int STEPS = 3;

    record Outcome(List<StepRecord> history, Map<String, float[]> weights) {
    }

    private static Outcome run(TrainCommand.DefaultSetup d, TrainerConfig tc, Collectives world, Path out) {
        return run(d, tc, world, out, Optional.empty(), Long.MAX_VALUE);
    }

    private static Outcome run(TrainCommand.DefaultSetup d, TrainerConfig tc, Collectives world, Path out, Optional<Path> resume, long stopAfter) {
        return run(d, Tuning.QLORA, tc, world, out, resume, stopAfter);
    }

    /** What trains: the embedded default's QLoRA, or every weight of its model (a full fine-tune). */
    enum Tuning {
        QLORA, FULL
    }

    private static Outcome run(TrainCommand.DefaultSetup d, Tuning tuning, TrainerConfig tc, Collectives world, Path out, Optional<Path> resume,
                               long stopAfter) {
        try (Scope run = Scope.open("rank", MemoryCategory.WEIGHTS)) {
            var trainable = tuning == Tuning.QLORA ? d.qlora(d.randomModel(), "default") : Trainable.full(d.randomModel(), "default");
            if (tc.weightPlacement() == TrainerConfig.WeightPlacement.HOST) {
                trainable.model().offloadLayerWeights(); // as --offload_param cpu loads a model: its layers into host memory
            }
            Trainer trainer = Trainer.builder(tc, trainable).train(d.examples().subList(0, 24)).eval(d.examples().subList(24, 31))
                    .outputDir(out).padId(d.padId()).world(world)
                    .info(new Trainer.RunInfo("dp", RunIdentity.builder().fixed("m", "default").build(), List.of())).build();
            try (trainer) {
                List<StepRecord> h = trainer.run(resume, stopAfter);
                Map<String, float[]> w = new LinkedHashMap<>();
                Runnable read = () -> {
                    for (Map.Entry<String, Tensor> p : trainable.namedParameters().entrySet()) {
                        w.put(p.getKey(), p.getValue().toFloatArray());
                    }
                };
                // ZeRO stage 3's trained layer weights are the ranks' parts: every rank lends its part to read them whole;
                // gathered whole on the device after, the model reads the same values
                if (trainable.model().layerWeights().orElse(null) instanceof ShardedWeights s && s.holdsTrainedParameters()) {
                    s.withWholeValues(read);
                    s.gatherWhole();
                    for (Map.Entry<String, Tensor> p : trainable.namedParameters().entrySet()) {
                        assertArrayEquals(w.get(p.getKey()), p.getValue().toFloatArray(), p.getKey() + " gathered whole");
                        assertTrue(p.getValue().requiresGrad(), p.getKey() + " trains on");
                    }
                } else {
                    read.run();
                }
                return new Outcome(h, w);
            }
        }
    }

    private static TrainerConfig config(TrainCommand.DefaultSetup d, int accumulation, int world) {
        return config(d, accumulation, world, TrainerConfig.OptimizerSharding.NONE);
    }

    private static TrainerConfig config(TrainCommand.DefaultSetup d, int accumulation, int world, TrainerConfig.OptimizerSharding sharding) {
        return d.trainerConfig().toBuilder().maxSteps(STEPS).batchSize(1).gradientAccumulation(accumulation).worldSize(world)
                .loggingSteps(1).save(TrainerConfig.SaveStrategy.STEPS, 2).ddpBucketBytes(BUCKET).optimizerSharding(sharding).build();
    }

    /** {@code tc} with layer checkpointing (ZeRO stage 3 needs recomputation; its stage 2 twin recomputes as well). */
    private static TrainerConfig layers(TrainerConfig tc) {
        return tc.toBuilder().checkpointing(Gemma3Model.Checkpointing.LAYERS).build();
    }

    /** Small buckets (the default model's flat gradients are a few hundred KiB), so each buffer is summed in pieces. */
    private static final long BUCKET = 64 << 10;

    /** A rank's collectives, counting its all-reduces and the bytes they carried. */
    static final class Counting implements Collectives {
        final Collectives inner;
        int allReduces;
        /** Maxima: the ranks agreeing which parameters had late contributions (each step after the first). */
        int maxima;
        long largest;
        int reduceScatters;
        int allGathers;
        /** Gathers whose input went through a staging buffer, and how many of those inputs were in pinned host memory. */
        int staged;
        int stagedFromHost;

        Counting(Collectives inner) {
            this.inner = inner;
        }

        @Override
        public int rank() {
            return inner.rank();
        }

        @Override
        public int worldSize() {
            return inner.worldSize();
        }

        @Override
        public void allReduce(Tensor t, Reduction op) {
            if (op == Reduction.MAX) {
                maxima++;
                inner.allReduce(t, op);
                return;
            }
            allReduces++;
            largest = Math.max(largest, t.dtype().bytesFor(t.numel()));
            inner.allReduce(t, op);
        }

        @Override
        public void reduceScatter(Tensor in, Tensor out, Reduction op) {
            reduceScatters++;
            inner.reduceScatter(in, out, op);
        }

        @Override
        public void allGather(Tensor in, Tensor out) {
            allGathers++;
            inner.allGather(in, out);
        }

        @Override
        public Overlap allGatherStagedOverlapped(Tensor in, Tensor staging, Tensor out) {
            staged++;
            stagedFromHost += in.placement() == dev.jtune.engine.Placement.HOST_MAPPED ? 1 : 0;
            return Collectives.super.allGatherStagedOverlapped(in, staging, out);
        }

        @Override
        public void broadcast(Tensor t, int root) {
            inner.broadcast(t, root);
        }

        @Override
        public void abort() {
            inner.abort();
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    private static final List<Counting> COUNTED = java.util.Collections.synchronizedList(new ArrayList<>());

    private static List<Outcome> ranks(TrainCommand.DefaultSetup d, int n, int accumulation, Path out) throws Exception {
        return ranks(d, n, accumulation, out, Long.MAX_VALUE);
    }

    private static List<Outcome> ranks(TrainCommand.DefaultSetup d, int n, int accumulation, Path out, long stopAfter) throws Exception {
        return ranks(d, n, accumulation, out, stopAfter, TrainerConfig.OptimizerSharding.NONE);
    }

    private static List<Outcome> ranks(TrainCommand.DefaultSetup d, int n, int accumulation, Path out, long stopAfter,
                                       TrainerConfig.OptimizerSharding sharding) throws Exception {
        return ranks(d, n, config(d, accumulation, n, sharding), out, stopAfter);
    }

    private static List<Outcome> ranks(TrainCommand.DefaultSetup d, int n, TrainerConfig tc, Path out, long stopAfter) throws Exception {
        return ranks(d, Tuning.QLORA, n, tc, out, Optional.empty(), stopAfter);
    }

    /** n ranks of {@code tuning} under {@code tc}, rank r writing to out/rank{r}, each resuming from its own {@code resume}. */
    private static List<Outcome> ranks(TrainCommand.DefaultSetup d, Tuning tuning, int n, TrainerConfig tc, Path out, Optional<Path> resume,
                                       long stopAfter) throws Exception {
        return new InProcessWorld(n, Duration.ofMinutes(2)).run(rank -> {
            Counting counting = new Counting(rank);
            COUNTED.add(counting);
            return run(d, tuning, tc, counting, out.resolve("rank" + rank.rank()), resume, stopAfter);
        });
    }

    /** The ranks' weights are one; their worst norm-relative difference per parameter to one rank's. */
    private static double worstAgainstOneRank(Outcome one, List<Outcome> ranks) {
        double worst = 0;
        for (Map.Entry<String, float[]> e : one.weights().entrySet()) {
            float[] ref = e.getValue();
            float[] r0 = ranks.get(0).weights().get(e.getKey());
            for (Outcome o : ranks) {
                assertArrayEquals(r0, o.weights().get(e.getKey()), e.getKey() + ": the ranks' weights are one");
            }
            double num = 0;
            double den = 0;
            for (int i = 0; i < ref.length; i++) {
                num += (r0[i] - ref[i]) * (double) (r0[i] - ref[i]);
                den += ref[i] * (double) ref[i];
            }
            worst = Math.max(worst, Math.sqrt(num / Math.max(den, 1e-30)));
        }
        return worst;
    }

    /**
     * One rank of four micro-batches, then two ranks of two under ZeRO stage 2 (writing under tmp/two), both with the
     * optimizer settings {@code optimizer} applies: each rank's losses and gradient norms within 1e-5 of the one rank's,
     * step by step, and its weights after (the ranks' sums round differently), printed as {@code what}. Returns the one
     * rank's run.
     */
    private static Outcome stageTwoRanksTrainAsOne(TrainCommand.DefaultSetup d, Path tmp, java.util.function.UnaryOperator<TrainerConfig.Builder> optimizer,
                                                   String what) throws Exception {
        Outcome one = run(d, optimizer.apply(config(d, 4, 1).toBuilder()).build(), null, tmp.resolve("one"));
        List<Outcome> two = ranks(d, 2, optimizer.apply(config(d, 2, 2, TrainerConfig.OptimizerSharding.GRADIENTS).toBuilder()).build(),
                tmp.resolve("two"), Long.MAX_VALUE);
        for (Outcome o : two) {
            for (int i = 0; i < STEPS; i++) {
                StepRecord a = one.history().get(i);
                StepRecord b = o.history().get(i);
                System.out.printf(java.util.Locale.ROOT, "%s, step %d: loss %.7f / %.7f%n", what, a.step(), a.loss(), b.loss());
                assertTrue(relative(b.loss(), a.loss()) < 1e-5, "loss at step " + a.step() + ": " + b.loss() + " vs " + a.loss());
                assertTrue(relative(b.gradNorm(), a.gradNorm()) < 1e-5, "gradient norm at step " + a.step());
            }
        }
        double worst = worstAgainstOneRank(one, two);
        System.out.println(what + ": weights after " + STEPS + " steps, worst norm-relative difference to one rank: " + worst);
        assertTrue(worst < 1e-5, "weights differ from one rank's by " + worst);
        return one;
    }

    /** Rank 0's checkpoint at step 2 (under tmp/two) resumed on one rank under {@code config}: step 3's loss as {@code one}'s, within 1e-5. */
    private static void resumesOnOneRank(TrainCommand.DefaultSetup d, TrainerConfig config, Path tmp, Outcome one) {
        Outcome resumed = run(d, config, null, tmp.resolve("two/rank0"), Optional.of(tmp.resolve("two/rank0/checkpoint-2")), Long.MAX_VALUE);
        assertEquals(STEPS, resumed.history().getLast().step());
        assertTrue(relative(resumed.history().getLast().loss(), one.history().get(STEPS - 1).loss()) < 1e-5,
                "the resumed step 3's loss: " + resumed.history().getLast().loss());
    }

    private static double relative(double a, double b) {
        return Math.abs(a - b) / Math.max(1e-12, Math.abs(b));
    }

    @Test
    void twoRanksOfTwoMicroBatchesTrainAsOneRankOfFour(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        Outcome one = run(d, config(d, 4, 1), null, tmp.resolve("one"));
        COUNTED.clear();
        List<Outcome> two = ranks(d, 2, 2, tmp.resolve("two"));
        for (Counting c : COUNTED) { // the flat gradients in buckets of at most BUCKET bytes, then the loss
            System.out.println("rank " + c.rank() + ": " + c.allReduces + " all-reduces over " + STEPS + " steps, the largest " + c.largest + " bytes");
            assertTrue(c.largest <= BUCKET, "a bucket of " + c.largest + " bytes");
            assertTrue(c.allReduces >= 3 * STEPS, c.allReduces + " all-reduces: the gradients went in more than one bucket a step");
            assertEquals(0, c.allReduces % STEPS, "the same calls every step");
            assertEquals(STEPS - 1, c.maxima, "one agreement on late contributions a step after the first");
        }
        assertEquals(STEPS, one.history().size());
        for (Outcome o : two) {
            assertEquals(STEPS, o.history().size());
            for (int i = 0; i < STEPS; i++) {
                StepRecord a = one.history().get(i);
                StepRecord b = o.history().get(i);
                System.out.printf(java.util.Locale.ROOT, "step %d: loss %.7f / %.7f, gradient norm %.7f / %.7f, tokens %d / %d%n", a.step(),
                        a.loss(), b.loss(), a.gradNorm(), b.gradNorm(), a.tokens(), b.tokens());
                assertTrue(relative(b.loss(), a.loss()) < 1e-5, "loss at step " + a.step() + ": " + b.loss() + " vs " + a.loss());
                assertTrue(relative(b.gradNorm(), a.gradNorm()) < 1e-5, "gradient norm at step " + a.step() + ": " + b.gradNorm() + " vs " + a.gradNorm());
                assertEquals(a.tokens(), b.tokens(), "tokens seen by step " + a.step() + " (every rank counts the global batch)");
            }
        }
        double worst = worstAgainstOneRank(one, two);
        System.out.println("weights after " + STEPS + " steps, worst norm-relative difference to one rank: " + worst);
        assertTrue(worst < 1e-5, "weights differ from one rank's by " + worst);
        assertTrue(Files.exists(tmp.resolve("two/rank0/metrics.jsonl")), "rank 0 writes metrics");
        assertTrue(Files.isDirectory(tmp.resolve("two/rank0/checkpoint-2")), "rank 0 writes checkpoints");
        assertFalse(Files.exists(tmp.resolve("two/rank1/metrics.jsonl")), "rank 1 writes no metrics");
        assertFalse(Files.exists(tmp.resolve("two/rank1/checkpoint-2")), "rank 1 writes no checkpoint");
        String report = Files.readString(tmp.resolve("two/rank0/report.html"));
        assertTrue(report.contains("device peak per rank") && report.contains("rank 0 ") && report.contains("rank 1 "),
                "rank 0's report has every rank's peak");
        assertFalse(Files.exists(tmp.resolve("two/rank1/report.html")), "rank 1 writes no report");
    }

    /**
     * Evaluation is split over the ranks (rank r takes eval batches r, r + N, ...; 7 examples in batches of 2: 4 batches,
     * an odd count) and the token-weighted sums added: two ranks report the eval loss of one rank, which evaluates all.
     */
    @Test
    void theRanksShareTheEvalSetAndReportOneRanksEvalLoss(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        Outcome one = run(d, evaluating(config(d, 4, 1)), null, tmp.resolve("one"));
        List<Outcome> two = new InProcessWorld(2, Duration.ofMinutes(2)).run(rank ->
                run(d, evaluating(config(d, 2, 2)), rank, tmp.resolve("two").resolve("rank" + rank.rank())));
        List<StepRecord> evals = one.history().stream().filter(StepRecord::hasEval).toList();
        assertEquals(STEPS, evals.size(), "an eval every step");
        for (Outcome o : two) {
            List<StepRecord> theirs = o.history().stream().filter(StepRecord::hasEval).toList();
            assertEquals(evals.size(), theirs.size());
            for (int i = 0; i < evals.size(); i++) {
                double a = evals.get(i).evalLoss();
                double b = theirs.get(i).evalLoss();
                System.out.printf(java.util.Locale.ROOT, "step %d: eval loss %.9f (one rank) / %.9f (two)%n", evals.get(i).step(), a, b);
                assertTrue(relative(b, a) < 1e-5, "eval loss at step " + evals.get(i).step() + ": " + b + " vs " + a);
            }
        }
    }

    private static TrainerConfig evaluating(TrainerConfig tc) {
        return tc.toBuilder().eval(TrainerConfig.SaveStrategy.STEPS, 1).evalBatchSize(2).build();
    }

    /**
     * Rank 0's checkpoint holds the whole state (data parallel shards nothing), and a step is the same global batch
     * whatever the world size: two ranks stopped after step 2 resume as one rank of accumulation 4 and finish as the
     * uninterrupted one-rank run.
     */
    @Test
    void aCheckpointOfTwoRanksResumesOnOne(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        Outcome whole = run(d, config(d, 4, 1), null, tmp.resolve("whole"));
        ranks(d, 2, 2, tmp.resolve("two"), 2);
        Path checkpoint = tmp.resolve("two/rank0/checkpoint-2");
        assertTrue(Files.isDirectory(checkpoint), "rank 0 saved step 2");
        Outcome resumed = run(d, config(d, 4, 1), null, tmp.resolve("two/rank0"), Optional.of(checkpoint), Long.MAX_VALUE);
        StepRecord a = whole.history().getLast();
        StepRecord b = resumed.history().getLast();
        assertEquals(STEPS, b.step());
        assertTrue(relative(b.loss(), a.loss()) < 1e-5, "last loss " + b.loss() + " vs " + a.loss());
        assertTrue(relative(b.gradNorm(), a.gradNorm()) < 1e-5, "last gradient norm " + b.gradNorm() + " vs " + a.gradNorm());
        for (Map.Entry<String, float[]> e : whole.weights().entrySet()) {
            float[] x = e.getValue();
            float[] y = resumed.weights().get(e.getKey());
            double num = 0;
            double den = 0;
            for (int i = 0; i < x.length; i++) {
                num += (y[i] - x[i]) * (double) (y[i] - x[i]);
                den += x[i] * (double) x[i];
            }
            assertTrue(Math.sqrt(num / Math.max(den, 1e-30)) < 1e-5, e.getKey());
        }
    }

    /**
     * ZeRO stage 1 (each rank holds half of AdamW's state and updates half of the weights, then all-gathers them) trains
     * as plain data parallel does, bit for bit: the same losses, the same weights on every rank, and rank 0's
     * checkpoints hold the same optimizer state, byte for byte (gathered from both ranks), so they resume anywhere.
     */
    @Test
    void shardedOptimizerStateTrainsAsPlainDataParallel(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        List<Outcome> plain = ranks(d, 2, 2, tmp.resolve("plain"), Long.MAX_VALUE, TrainerConfig.OptimizerSharding.NONE);
        List<Outcome> sharded = ranks(d, 2, 2, tmp.resolve("sharded"), Long.MAX_VALUE, TrainerConfig.OptimizerSharding.STATE);
        for (int r = 0; r < 2; r++) {
            for (int i = 0; i < STEPS; i++) {
                assertEquals(plain.get(r).history().get(i).loss(), sharded.get(r).history().get(i).loss(), "rank " + r + " loss at step " + (i + 1));
            }
            for (Map.Entry<String, float[]> e : plain.get(r).weights().entrySet()) {
                assertArrayEquals(e.getValue(), sharded.get(r).weights().get(e.getKey()), "rank " + r + ": " + e.getKey());
            }
        }
        for (String c : List.of("checkpoint-2", "checkpoint-3")) {
            Path a = tmp.resolve("plain/rank0").resolve(c).resolve(dev.jtune.train.loop.CheckpointStore.OPTIMIZER_FILE);
            Path b = tmp.resolve("sharded/rank0").resolve(c).resolve(dev.jtune.train.loop.CheckpointStore.OPTIMIZER_FILE);
            assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), c + "'s optimizer state, sharded against whole");
        }
    }

    /**
     * ZeRO stage 2 (each rank keeps only its parts of the summed gradients, reduce-scattered after every backward, and
     * its parts of the state) trains as one rank of four micro-batches does: the same losses and gradient norms within
     * 1e-5, the ranks' weights one, within 1e-5 of one rank's (the sums round differently: a reduce-scatter a
     * micro-batch); no parameter holds a whole gradient; rank 0's checkpoint, its state gathered, resumes on one rank.
     */
    @Test
    void shardedGradientsTrainAsOneRankAndResumeOnOne(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        Outcome one = run(d, config(d, 4, 1), null, tmp.resolve("one"));
        COUNTED.clear();
        List<Outcome> two = ranks(d, 2, 2, tmp.resolve("two"), Long.MAX_VALUE, TrainerConfig.OptimizerSharding.GRADIENTS);
        for (Counting c : COUNTED) {
            System.out.println("rank " + c.rank() + ": " + c.reduceScatters + " reduce-scatters, " + c.allReduces + " sums (loss, norm) over " + STEPS + " steps");
            assertEquals(0, c.reduceScatters % (2 * STEPS), "the same reduce-scatters after each of a step's two backwards");
            assertTrue(c.reduceScatters >= 2 * 2 * STEPS, "the gradients went in more than one bucket");
            assertEquals(2 * STEPS, c.allReduces, "per step the loss and the squared gradient norm: no gradient all-reduced whole");
        }
        for (Outcome o : two) {
            for (int i = 0; i < STEPS; i++) {
                StepRecord a = one.history().get(i);
                StepRecord b = o.history().get(i);
                System.out.printf(java.util.Locale.ROOT, "stage 2, step %d: loss %.7f / %.7f, gradient norm %.7f / %.7f%n", a.step(),
                        a.loss(), b.loss(), a.gradNorm(), b.gradNorm());
                assertTrue(relative(b.loss(), a.loss()) < 1e-5, "loss at step " + a.step());
                assertTrue(relative(b.gradNorm(), a.gradNorm()) < 1e-5, "gradient norm at step " + a.step());
            }
        }
        double worst = worstAgainstOneRank(one, two);
        System.out.println("stage 2: weights after " + STEPS + " steps, worst norm-relative difference to one rank: " + worst);
        assertTrue(worst < 1e-5, "weights differ from one rank's by " + worst);
        // rank 0's checkpoint at step 2 (state gathered from both ranks) resumes on one rank as one rank's own run goes on
        resumesOnOneRank(d, config(d, 4, 1), tmp, one);
    }

    /**
     * ZeRO-Offload: stage 2 with the optimizer on the host ({@code --offload_optimizer cpu} beside a ZeRO stage): each
     * rank keeps its part of the state in host memory and steps it on its cores. Two ranks of two micro-batches train as
     * one rank of four with the host-offloaded optimizer (losses, norms and weights within 1e-5: the sums round
     * differently); rank 0's checkpoint resumes on one rank with the optimizer on the device; and without a ZeRO stage a
     * world of two still refuses the host optimizer, saying why.
     */
    @Test
    void hostSteppedShardsTrainAsOneHostOffloadedRank(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        Outcome one = stageTwoRanksTrainAsOne(d, tmp, b -> b.optimizerState(TrainerConfig.OptimizerStatePrecision.FP32,
                TrainerConfig.OptimizerStatePlacement.HOST), "stage 2, state on the host");
        resumesOnOneRank(d, config(d, 4, 1), tmp, one);
        TrainerConfig unsharded = config(d, 2, 2).toBuilder().optimizerState(TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.HOST).build();
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                () -> checkBuild(unsharded, new InProcessWorld(2, Duration.ofSeconds(5)).rank(0)));
        assertEquals(TrainerConfig.HOST_OPTIMIZER_NOT_WITH_DATA_PARALLEL, e.getMessage());
    }

    /**
     * ZeRO-Offload with the delayed step ({@code --offload_optimizer cpu --delayed_optimizer_step} beside a stage): each
     * rank's host update of step i runs while the ranks compute step i + 1, and is applied (its weights gathered) at the
     * next step, a save or the end. Two ranks of two micro-batches train as one rank of four with the one-rank delayed
     * host optimizer (losses and weights within 1e-5), and rank 0's checkpoint resumes on one rank.
     */
    @Test
    void delayedHostShardsTrainAsOneDelayedRankAndResumeOnOne(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        java.util.function.UnaryOperator<TrainerConfig.Builder> delayed = b -> b.optimizerState(TrainerConfig.OptimizerStatePrecision.FP32,
                TrainerConfig.OptimizerStatePlacement.HOST).optimizerStepTiming(TrainerConfig.OptimizerStepTiming.DELAYED_ONE_STEP);
        Outcome one = stageTwoRanksTrainAsOne(d, tmp, delayed, "delayed host stage 2");
        resumesOnOneRank(d, delayed.apply(config(d, 4, 1).toBuilder()).build(), tmp, one);
    }

    /**
     * ZeRO stage 2 in a world of one: each bucket reduce-scattered (a copy) into a shard that is the whole flat layout,
     * stepped by the sharded AdamW, fp32 or 8-bit: the plain trainer's (AdamW's or AdamW8bit's) losses, norms and weights bit for bit (every adapter weight gets
     * one contribution a backward, so nothing is summed in another order). NcclWorldOfOneGpuTest checks the same on the GPU.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(TrainerConfig.OptimizerStatePrecision.class)
    void shardedGradientsInAWorldOfOneTrainAsThePlainTrainerBitForBit(TrainerConfig.OptimizerStatePrecision precision, @TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        Outcome plain = run(d, config(d, 2, 1).toBuilder().optimizerState(precision, TrainerConfig.OptimizerStatePlacement.DEVICE).build(), null,
                tmp.resolve("plain"));
        Outcome one = ranks(d, 1, config(d, 2, 1, TrainerConfig.OptimizerSharding.GRADIENTS).toBuilder()
                .optimizerState(precision, TrainerConfig.OptimizerStatePlacement.DEVICE).build(), tmp.resolve("stage2"), Long.MAX_VALUE).getFirst();
        for (int i = 0; i < STEPS; i++) {
            assertEquals(plain.history().get(i).loss(), one.history().get(i).loss(), 0.0, "loss at step " + (i + 1));
            assertEquals(plain.history().get(i).gradNorm(), one.history().get(i).gradNorm(), 0.0, "gradient norm at step " + (i + 1));
        }
        for (Map.Entry<String, float[]> e : plain.weights().entrySet()) {
            assertArrayEquals(e.getValue(), one.weights().get(e.getKey()), e.getKey());
        }
    }

    /**
     * ZeRO stage 3 (each rank keeps half of every layer's frozen weights, the QLoRA base and norms, and gathers a layer
     * as computation reaches it) trains as stage 2 does, bit for bit: the gathered bytes are the weights' own. The
     * layers are gathered (all-gathers beyond stage 2's) and recomputed (layer checkpointing, which stage 3 needs). Its
     * checkpoint resumes on one rank.
     */
    @Test
    void shardedFrozenWeightsTrainAsStageTwoBitForBit(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        COUNTED.clear();
        List<Outcome> stage2 = ranks(d, 2, layers(config(d, 2, 2, TrainerConfig.OptimizerSharding.GRADIENTS)), tmp.resolve("stage2"), Long.MAX_VALUE);
        int gathers2 = COUNTED.stream().mapToInt(c -> c.allGathers).sum();
        COUNTED.clear();
        TrainerConfig stage3Config = layers(config(d, 2, 2, TrainerConfig.OptimizerSharding.GRADIENTS)).toBuilder()
                .optimizerSharding(TrainerConfig.OptimizerSharding.PARAMETERS).build();
        List<Outcome> stage3 = ranks(d, 2, stage3Config, tmp.resolve("stage3"), Long.MAX_VALUE);
        int gathers3 = COUNTED.stream().mapToInt(c -> c.allGathers).sum();
        System.out.println("all-gathers over " + STEPS + " steps, both ranks: stage 2 " + gathers2 + ", stage 3 " + gathers3);
        assertTrue(gathers3 > gathers2, "stage 3 gathers the layers");
        for (int r = 0; r < 2; r++) {
            for (int i = 0; i < STEPS; i++) {
                assertEquals(stage2.get(r).history().get(i).loss(), stage3.get(r).history().get(i).loss(), 0.0, "rank " + r + ", loss at step " + (i + 1));
                assertEquals(stage2.get(r).history().get(i).gradNorm(), stage3.get(r).history().get(i).gradNorm(), 0.0,
                        "rank " + r + ", gradient norm at step " + (i + 1));
            }
            for (Map.Entry<String, float[]> e : stage2.get(r).weights().entrySet()) {
                assertArrayEquals(e.getValue(), stage3.get(r).weights().get(e.getKey()), "rank " + r + ": " + e.getKey());
            }
        }
        // rank 0's checkpoint at step 2 (the adapters and the gathered state; the frozen base is the model's own)
        // resumes on one rank as the two ranks went on
        Outcome resumed = run(d, layers(config(d, 4, 1)), null, tmp.resolve("stage3/rank0"), Optional.of(tmp.resolve("stage3/rank0/checkpoint-2")),
                Long.MAX_VALUE);
        StepRecord last = resumed.history().getLast();
        assertEquals(STEPS, last.step());
        assertTrue(relative(last.loss(), stage3.get(0).history().get(STEPS - 1).loss()) < 1e-5, "the resumed step 3's loss: " + last.loss());
    }

    /**
     * ZeRO stage 2 of bitsandbytes' 8-bit AdamW ({@code --optim adamw_8bit} beside a stage): each rank keeps its part of
     * the 8-bit codes and block maxima (and of the small parameters' fp32 moments); two ranks of two micro-batches train
     * as one rank of four with AdamW8bit (losses and weights within 1e-5: the sums round differently, and a code may
     * then round to its neighbour), and rank 0's checkpoint (the state gathered into AdamW8bit's names) resumes on one
     * rank with AdamW8bit.
     */
    @Test
    void eightBitShardsTrainAsOneRankAndResumeOnOne(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        java.util.function.UnaryOperator<TrainerConfig.Builder> eightBit = b -> b.optimizerState(TrainerConfig.OptimizerStatePrecision.BLOCKWISE_8BIT,
                TrainerConfig.OptimizerStatePlacement.DEVICE);
        Outcome one = stageTwoRanksTrainAsOne(d, tmp, eightBit, "8-bit stage 2");
        resumesOnOneRank(d, eightBit.apply(config(d, 4, 1).toBuilder()).build(), tmp, one);
    }

    /**
     * ZeRO stage 3 beside weight offload (ZeRO-3's offload_param: {@code --offload_param cpu}): each rank keeps its part
     * of every layer's frozen weights in pinned host memory (the model loaded there first, as the flag loads it, the
     * shards taking its layers over), and each gather reads it through a device staging buffer; it trains as stage 3
     * with the parts on the device, bit for bit.
     */
    @Test
    void shardedFrozenWeightsInHostMemoryTrainAsOnTheDeviceBitForBit(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        TrainerConfig onDevice = layers(config(d, 2, 2, TrainerConfig.OptimizerSharding.GRADIENTS)).toBuilder()
                .optimizerSharding(TrainerConfig.OptimizerSharding.PARAMETERS).build();
        List<Outcome> device = ranks(d, 2, onDevice, tmp.resolve("device"), Long.MAX_VALUE);
        COUNTED.clear();
        TrainerConfig onHost = onDevice.toBuilder().weightPlacement(TrainerConfig.WeightPlacement.HOST).build();
        List<Outcome> host = ranks(d, 2, onHost, tmp.resolve("host"), Long.MAX_VALUE);
        for (Counting c : COUNTED) {
            System.out.println("rank " + c.rank() + ": " + c.staged + " staged gathers, " + c.stagedFromHost + " from host memory");
            assertTrue(c.staged > 0 && c.stagedFromHost == c.staged, "every layer's part is gathered from host memory: " + c.stagedFromHost
                    + " of " + c.staged);
        }
        assertSameRuns(device, host);
    }

    /** Two ranks' runs equal, rank by rank: losses and weights bit for bit. */
    private static void assertSameRuns(List<Outcome> expected, List<Outcome> actual) {
        for (int r = 0; r < expected.size(); r++) {
            for (int i = 0; i < STEPS; i++) {
                assertEquals(expected.get(r).history().get(i).loss(), actual.get(r).history().get(i).loss(), 0.0, "rank " + r + ", loss at step " + (i + 1));
            }
            assertEquals(expected.get(r).weights().keySet(), actual.get(r).weights().keySet());
            for (Map.Entry<String, float[]> e : expected.get(r).weights().entrySet()) {
                assertArrayEquals(e.getValue(), actual.get(r).weights().get(e.getKey()), "rank " + r + ": " + e.getKey());
            }
        }
    }

    /**
     * ZeRO stage 3 of a full fine-tune: each rank keeps its half of every layer's trained weights beside their
     * gradient and state parts (the buckets cut at the layers), writes its update there, and gathers a layer as
     * computation reaches it; it trains as stage 2 does, bit for bit: losses, norms and weights (the forward reads the
     * very weights, each gradient element is summed alike). Clipping is off: the shards are laid out otherwise (cut at
     * the layers), so a norm's sum of squares adds in another order, and a clipped update would round apart (by 5e-8
     * of the weights' norm after 3 steps when tried). Its checkpoint (the weights lent whole for the save) resumes on
     * one rank, and on two ranks under stage 3 again (the restored weights taken back into the parts) as the
     * uninterrupted run went on.
     */
    @Test
    void shardedTrainedWeightsTrainAsStageTwoBitForBitAndResume(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        TrainerConfig stage2Config = layers(config(d, 2, 2, TrainerConfig.OptimizerSharding.GRADIENTS)).toBuilder().learningRate(1e-3).maxGradNorm(0).build();
        COUNTED.clear();
        List<Outcome> stage2 = ranks(d, Tuning.FULL, 2, stage2Config, tmp.resolve("stage2"), Optional.empty(), Long.MAX_VALUE);
        int gathers2 = COUNTED.stream().mapToInt(c -> c.allGathers).sum();
        COUNTED.clear();
        TrainerConfig stage3Config = stage2Config.toBuilder().optimizerSharding(TrainerConfig.OptimizerSharding.PARAMETERS).build();
        List<Outcome> stage3 = ranks(d, Tuning.FULL, 2, stage3Config, tmp.resolve("stage3"), Optional.empty(), Long.MAX_VALUE);
        int gathers3 = COUNTED.stream().mapToInt(c -> c.allGathers).sum();
        System.out.println("full fine-tune, all-gathers over " + STEPS + " steps, both ranks: stage 2 " + gathers2 + ", stage 3 " + gathers3);
        assertTrue(gathers3 > gathers2, "stage 3 gathers the layers");
        for (int r = 0; r < 2; r++) {
            for (int i = 0; i < STEPS; i++) {
                StepRecord a = stage2.get(r).history().get(i);
                StepRecord b = stage3.get(r).history().get(i);
                System.out.printf(java.util.Locale.ROOT, "rank %d, step %d: loss %.9f / %.9f, gradient norm %.9f / %.9f%n", r, a.step(), a.loss(),
                        b.loss(), a.gradNorm(), b.gradNorm());
                assertEquals(a.loss(), b.loss(), 0.0, "rank " + r + ", loss at step " + a.step());
                assertEquals(a.gradNorm(), b.gradNorm(), 0.0, "rank " + r + ", gradient norm at step " + a.step());
            }
            assertEquals(stage2.get(r).weights().keySet(), stage3.get(r).weights().keySet());
            for (Map.Entry<String, float[]> e : stage2.get(r).weights().entrySet()) {
                assertArrayEquals(e.getValue(), stage3.get(r).weights().get(e.getKey()), "rank " + r + ": " + e.getKey());
            }
        }
        double last = stage3.get(0).history().get(STEPS - 1).loss();
        Path ckpt = tmp.resolve("stage3/rank0/checkpoint-2");
        Outcome one = run(d, Tuning.FULL, layers(config(d, 4, 1)).toBuilder().learningRate(1e-3).build(), null, tmp.resolve("one"),
                Optional.of(ckpt), Long.MAX_VALUE);
        assertEquals(STEPS, one.history().getLast().step());
        assertTrue(relative(one.history().getLast().loss(), last) < 1e-5, "resumed on one rank, step 3's loss: " + one.history().getLast().loss());
        // both ranks resume stage 3 from rank 0's checkpoint (copied to rank 1's directory: one checkpoint serves any world)
        copyTree(ckpt, tmp.resolve("again/rank0/checkpoint-2"));
        copyTree(ckpt, tmp.resolve("again/rank1/checkpoint-2"));
        List<Outcome> again = new InProcessWorld(2, Duration.ofMinutes(2)).run(rank -> run(d, Tuning.FULL, stage3Config, rank,
                tmp.resolve("again/rank" + rank.rank()), Optional.of(tmp.resolve("again/rank" + rank.rank() + "/checkpoint-2")), Long.MAX_VALUE));
        for (Outcome o : again) {
            assertEquals(STEPS, o.history().getLast().step());
            assertTrue(relative(o.history().getLast().loss(), last) < 1e-5, "resumed under stage 3, step 3's loss: " + o.history().getLast().loss());
        }
    }

    /**
     * ZeRO stage 3 of a full fine-tune with the optimizer on the host (ZeRO-Offload): the host step writes the updated
     * weights into the rank's parts of the layers instead of the whole parameters; it trains as stage 2 with the state
     * on the host does, bit for bit (clipping off, as above); so does a model loaded into host memory (as
     * {@code --offload_param cpu} loads it), whose layers the shards take over.
     */
    @Test
    void shardedTrainedWeightsWithTheStateOnTheHostTrainAsStageTwoBitForBit(@TempDir Path tmp) throws Exception {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        TrainerConfig stage2Config = layers(config(d, 2, 2, TrainerConfig.OptimizerSharding.GRADIENTS)).toBuilder().learningRate(1e-3).maxGradNorm(0)
                .optimizerState(TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.HOST).build();
        List<Outcome> stage2 = ranks(d, Tuning.FULL, 2, stage2Config, tmp.resolve("stage2"), Optional.empty(), Long.MAX_VALUE);
        TrainerConfig stage3Config = stage2Config.toBuilder().optimizerSharding(TrainerConfig.OptimizerSharding.PARAMETERS).build();
        List<Outcome> stage3 = ranks(d, Tuning.FULL, 2, stage3Config, tmp.resolve("stage3"), Optional.empty(), Long.MAX_VALUE);
        assertSameRuns(stage2, stage3);
        // loaded into host memory as --offload_param cpu loads it: the layers handed to the shards (the trained parts on
        // the device, beside the optimizer's), the same run
        List<Outcome> loaded = ranks(d, Tuning.FULL, 2, stage3Config.toBuilder().weightPlacement(TrainerConfig.WeightPlacement.HOST).build(),
                tmp.resolve("loaded"), Optional.empty(), Long.MAX_VALUE);
        assertSameRuns(stage2, loaded);
    }

    private static void copyTree(Path from, Path to) throws java.io.IOException {
        try (var files = Files.walk(from)) {
            for (Path p : files.toList()) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target);
                }
            }
        }
    }

    @Test
    void aRankThatGoesAwayStopsTheOthersWithAClearError() {
        InProcessWorld world = new InProcessWorld(2, Duration.ofMillis(300));
        Collectives rank0 = world.rank(0);
        try (Scope s = Scope.open("t", MemoryCategory.ACTIVATIONS)) {
            Tensor t = Tensor.zeros(dev.jtune.engine.Shape.of(4), dev.jtune.engine.DType.F32, Device.CPU);
            CollectiveException e = assertThrows(CollectiveException.class, () -> rank0.allReduce(t, Collectives.Reduction.SUM));
            assertTrue(e.getMessage().startsWith("rank 0: all-reduce: a peer aborted or did not arrive"), e.getMessage());
            assertTrue(e.hint().orElseThrow().contains("--ddp_timeout"), e.hint().orElseThrow());
        }
    }

    @Test
    void theWorldMustMatchTheConfig() {
        TrainerConfig tc = TrainerConfig.builder().worldSize(2).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> checkBuild(tc, null));
        assertTrue(e.getMessage().contains("1 rank(s), its config 2"), e.getMessage());
    }

    private static void checkBuild(TrainerConfig tc, Collectives world) {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        try (Scope run = Scope.open("rank", MemoryCategory.WEIGHTS)) {
            Trainer.builder(tc, d.qlora(d.randomModel(), "default")).train(d.examples()).outputDir(Path.of("unused")).world(world)
                    .info(new Trainer.RunInfo("dp", RunIdentity.builder().fixed("m", "default").build(), List.of())).build();
        }
    }
}
