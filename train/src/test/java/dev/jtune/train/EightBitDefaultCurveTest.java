package dev.jtune.train;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.AdamW8bit;
import dev.jtune.engine.optim.GradClip;
import dev.jtune.engine.optim.Optimizer;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.loop.Batcher;
import dev.jtune.train.loop.LrSchedule;
import dev.jtune.train.loop.StepRecord;
import dev.jtune.train.loop.Trainable;
import dev.jtune.train.loop.Trainer;
import dev.jtune.train.loop.TrainerConfig;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 12's 8-bit criterion on the embedded default: over 100 steps, bitsandbytes' 8-bit AdamW's loss curve stays
 * within 2% of fp32 AdamW's at every logged step. About 3 minutes (the second case 4) on a 2-core cpu, so tagged
 * {@code slow}: CI leaves it out; run it with {@code mvn -pl train -am test -Dtest=EightBitDefaultCurveTest
 * -Djtune.test.excludedGroups=gpu}.
 *
 * <p>Status (2026-12-05, cpu): the first case FAILS, unchanged by checking the implementation against bitsandbytes'
 * source rule by rule (ARCHITECTURE.md): 19 of the 100 steps differ by more than 2%, the first at step 18 (2.4%), the
 * most at step 30 (fp32's batch loss 7.107, 8-bit's 4.844: 32%; next worst 6.5% at step 31). The same fp32 AdamW
 * computed in fp32 on the host instead of in double follows the double curve to 4 digits at every step. The second
 * case shows why: perturbing fp32 AdamW's state of the 8-bit-sized tensors by a known amount after every update, the
 * loss gap follows the update's error: m and v rounded to 8 significant bits (update error 0.44%) stay within 0.94%;
 * rounded to 4 (9.3%) fail at 22 steps, worst 31% at step 30 again; 8-bit AdamW's update error is 4.3%. So the
 * criterion asks this lr-1e-2 curve for a state finer than the dynamic map's codes. Left as the issue states it, not
 * loosened.
 */
@Tag("slow")
class EightBitDefaultCurveTest {

    private static List<StepRecord> run(TrainCommand.DefaultSetup d, TrainerConfig.OptimizerStatePrecision precision,
                                        TrainerConfig.OptimizerStatePlacement placement, Path out) {
        TrainerConfig tc = d.trainerConfig().toBuilder().maxSteps(100).epochs(100).loggingSteps(1)
                .save(TrainerConfig.SaveStrategy.NO, 0).optimizerState(precision, placement).build();
        try (Scope run = Scope.open("curve", MemoryCategory.WEIGHTS)) {
            Trainer trainer = Trainer.builder(tc, d.qlora(d.randomModel(), "default")).train(d.examples()).outputDir(out)
                    .padId(d.padId()).info(new Trainer.RunInfo("curve", dev.jtune.train.loop.RunIdentity.builder().fixed("m", "default").build(), List.of()))
                    .build();
            return trainer.run(Optional.empty(), Long.MAX_VALUE);
        }
    }

    @Test
    void eightBitAdamWTracksFp32AdamWWithinTwoPercent(@TempDir Path tmp) {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        List<StepRecord> fp32 = run(d, TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.DEVICE, tmp.resolve("fp32"));
        List<StepRecord> q8 = run(d, TrainerConfig.OptimizerStatePrecision.BLOCKWISE_8BIT, TrainerConfig.OptimizerStatePlacement.DEVICE, tmp.resolve("8bit"));
        // the same fp32 AdamW computed in fp32 on the host instead of in double: a rounding-sized perturbation
        List<StepRecord> host = run(d, TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.HOST, tmp.resolve("host"));
        assertTrue(fp32.size() == 100 && q8.size() == 100 && host.size() == 100, fp32.size() + ", " + q8.size() + " and " + host.size() + " logged steps");
        double worst = 0;
        long at = 0;
        for (int i = 0; i < fp32.size(); i++) {
            System.out.printf(Locale.ROOT, "step %3d  fp32 %.4f  8-bit %.4f  fp32-host %.4f%n", fp32.get(i).step(), fp32.get(i).loss(), q8.get(i).loss(),
                    host.get(i).loss());
            double rel = Math.abs(q8.get(i).loss() - fp32.get(i).loss()) / fp32.get(i).loss();
            if (rel > worst) {
                worst = rel;
                at = fp32.get(i).step();
            }
        }
        System.out.printf(Locale.ROOT, "embedded default, 100 steps: fp32 AdamW loss %.4f -> %.4f, 8-bit %.4f -> %.4f; worst relative gap %.4f at step %d%n",
                fp32.getFirst().loss(), fp32.getLast().loss(), q8.getFirst().loss(), q8.getLast().loss(), worst, at);
        assertTrue(worst <= 0.02, "worst relative loss gap " + worst + " at step " + at);
    }

    /** What {@link #replica} does to the optimizer after each of its updates: nothing, or a perturbation of its state. */
    @FunctionalInterface
    private interface AfterUpdate {
        AfterUpdate NOTHING = (optimizer, step) -> { };

        void apply(Optimizer optimizer, long step);
    }

    /**
     * m and v of the parameters AdamW8bit keeps in 8 bits (4096+ elements: here the LoRA factors of the MLP), each
     * rounded in place to {@code bits} significant bits (round to nearest even; a relative error at most 2^-bits), the
     * live state through {@code state()}'s views.
     */
    private static void roundEightBitTensors(Optimizer optimizer, int bits) {
        int drop = 24 - bits; // of fp32's 24 significant bits
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("round")) {
            optimizer.state().forEach((name, t) -> {
                if ((name.endsWith(".exp_avg") || name.endsWith(".exp_avg_sq")) && t.numel() >= AdamW8bit.MIN_8BIT_SIZE) {
                    float[] x = t.toFloatArray();
                    for (int i = 0; i < x.length; i++) {
                        int b = Float.floatToRawIntBits(x[i]);
                        int half = (1 << (drop - 1)) - 1 + ((b >>> drop) & 1);
                        x[i] = Float.intBitsToFloat((b + half) & -(1 << drop));
                    }
                    Ops.copyInto(Tensor.fromArray(x, t.shape(), DType.F32, t.device()), t);
                }
            });
        }
    }

    /**
     * After each update, how far the update of the parameters AdamW8bit keeps in 8 bits was from exact AdamW's (in
     * double, fed the same clipped gradients from its own exact m and v): |dp - dp_exact| / |dp_exact| over all their
     * elements, from update 2 on (update 1's weights before are not kept); then the run's perturbation, if any.
     * Weight decay 0 (the default's), so exact AdamW's update is its Adam term alone.
     */
    private static final class UpdateError implements AfterUpdate {
        private final TrainerConfig tc;
        private final AfterUpdate perturbation;
        private final java.util.Map<Tensor, double[][]> shadow = new java.util.IdentityHashMap<>(); // before, m, v
        final double[] error;

        UpdateError(TrainerConfig tc, AfterUpdate perturbation) {
            this.tc = tc;
            this.perturbation = perturbation;
            this.error = new double[(int) tc.maxSteps()];
        }

        @Override
        public void apply(Optimizer optimizer, long step) {
            double lr = optimizer.learningRate();
            double bc1 = 1 - Math.pow(tc.beta1(), step);
            double bc2 = 1 - Math.pow(tc.beta2(), step);
            double num = 0;
            double den = 0;
            for (var buffer : optimizer.gradientBuffers()) {
                for (Tensor p : buffer.parameters()) {
                    if (p.numel() < AdamW8bit.MIN_8BIT_SIZE) {
                        continue;
                    }
                    double[] now = p.toDoubleArray();
                    double[] g = p.grad().toDoubleArray();
                    double[][] s = shadow.computeIfAbsent(p, k -> new double[][] {null, new double[now.length], new double[now.length]});
                    for (int i = 0; i < now.length; i++) {
                        s[1][i] = tc.beta1() * s[1][i] + (1 - tc.beta1()) * g[i];
                        s[2][i] = tc.beta2() * s[2][i] + (1 - tc.beta2()) * g[i] * g[i];
                        if (s[0] != null) {
                            double exact = -lr / bc1 * s[1][i] / (Math.sqrt(s[2][i] / bc2) + tc.epsilon());
                            double got = now[i] - s[0][i];
                            num += (got - exact) * (got - exact);
                            den += exact * exact;
                        }
                    }
                    s[0] = now;
                }
            }
            error[(int) step - 1] = den == 0 ? Double.NaN : Math.sqrt(num / den);
            perturbation.apply(optimizer, step);
        }
    }

    /**
     * The trainer's loop (Trainer.loop and Trainer.step: the same batches, dropout seeds, loss, clipping, schedule and
     * update), restated so that the optimizer's state can be perturbed between updates; each step's loss, as the
     * trainer logs it.
     */
    private static double[] replica(TrainCommand.DefaultSetup d, TrainerConfig tc, boolean eightBit, AfterUpdate after) {
        try (Scope run = Scope.open("replica", MemoryCategory.WEIGHTS)) {
            Trainable trainable = d.qlora(d.randomModel(), "default");
            Device device = trainable.model().device();
            Batcher batcher = new Batcher(d.examples(), tc.batchSize(), tc.seed(), d.padId());
            long total = Trainer.totalSteps(tc, d.examples().size());
            long warmup = tc.warmupSteps() > 0 ? tc.warmupSteps() : (long) Math.ceil(tc.warmupRatio() * total);
            LrSchedule schedule = new LrSchedule(tc.schedule(), tc.learningRate(), warmup, total);
            AdamW.Config adam = new AdamW.Config(tc.learningRate(), tc.beta1(), tc.beta2(), tc.epsilon(), tc.weightDecay());
            Optimizer optimizer;
            try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
                optimizer = eightBit ? new AdamW8bit(trainable.namedParameters(), adam) : new AdamW(trainable.namedParameters(), adam);
            }
            double[] losses = new double[(int) total];
            long micro = 0;
            for (long step = 0; step < total; step++) {
                List<int[]> batches = new java.util.ArrayList<>();
                int counted = 0;
                for (int i = 0; i < tc.gradientAccumulation(); i++) {
                    long index = micro + i;
                    int[] b = batcher.epoch(index / batcher.batchesPerEpoch()).get((int) (index % batcher.batchesPerEpoch()));
                    batches.add(b);
                    counted += batcher.countedTokens(b);
                }
                try (Scope s = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
                    Tensor stepLoss = null;
                    for (int i = 0; i < batches.size(); i++) {
                        trainable.train(CounterRng.bits(tc.seed(), micro + i));
                        try (Scope mb = Scope.open("micro-batch", MemoryCategory.ACTIVATIONS)) {
                            Tensor[] t = batcher.tensors(batches.get(i), device);
                            Tensor loss = trainable.model().loss(t[0], t[1], new Gemma3Model.Options(tc.checkpointing(), 512), Math.max(1, counted));
                            loss.backward();
                            try (Autograd.GradMode off = Autograd.noGrad()) {
                                Tensor l = loss.detach();
                                stepLoss = mb.keep(stepLoss == null ? l.copy() : Ops.add(stepLoss, l));
                            }
                        }
                    }
                    trainable.eval();
                    GradClip.GradNorm norm = tc.maxGradNorm() > 0 ? GradClip.clipFlatGradNorm(optimizer.gradientBuffers(), tc.maxGradNorm())
                            : GradClip.flatNorm(optimizer.gradientBuffers());
                    double loss = stepLoss.item();
                    if (Double.isFinite(loss) && Double.isFinite(norm.value())) {
                        optimizer.learningRate(schedule.lr(step));
                        optimizer.step();
                        after.apply(optimizer, step + 1);
                    }
                    optimizer.zeroGrad();
                    losses[(int) step] = loss;
                }
                micro += batches.size();
            }
            return losses;
        }
    }

    /**
     * Is the 2% criterion within reach of any low-precision optimizer state on this curve? The fp32 AdamW run again
     * with m and v of the tensors AdamW8bit keeps in 8 bits rounded after every update to 8 significant bits (bf16's:
     * a relative error at most 2^-8) or to 4 (at most 2^-4: fp8 e4m3's precision without its range limit), or to 8
     * once, after update 5; against the unperturbed run and 8-bit AdamW. For each run, the update's distance from exact
     * AdamW's (UpdateError) and the loss's from the fp32 run's. Asserted: the restated loop reproduces the trainer's fp32
     * curve bit for bit, so every other run differs from it by its optimizer state alone. The figures are printed
     * (ARCHITECTURE.md quotes them).
     */
    @Test
    void statePerturbationsOfKnownSizeShowHowSensitiveTheCurveIs(@TempDir Path tmp) {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        TrainerConfig tc = d.trainerConfig().toBuilder().maxSteps(100).epochs(100).loggingSteps(1)
                .save(TrainerConfig.SaveStrategy.NO, 0).optimizerState(TrainerConfig.OptimizerStatePrecision.FP32,
                        TrainerConfig.OptimizerStatePlacement.DEVICE).build();
        assertEquals(0, tc.weightDecay(), "UpdateError's exact AdamW has no decay term");
        List<StepRecord> trainer = run(d, TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.DEVICE, tmp.resolve("fp32"));
        UpdateError exact = new UpdateError(tc, AfterUpdate.NOTHING);
        double[] fp32 = replica(d, tc, false, exact);
        assertEquals(trainer.size(), fp32.length);
        for (int i = 0; i < fp32.length; i++) {
            assertEquals(trainer.get(i).loss(), fp32[i], "step " + (i + 1) + ": the restated loop is the trainer's");
        }
        String[] names = {"fp32 AdamW (the probe's own error)", "8-bit AdamW", "state rounded to 8 bits every update",
                "state rounded to 4 bits every update", "state rounded to 8 bits once, after update 5"};
        UpdateError[] probes = {exact, new UpdateError(tc, AfterUpdate.NOTHING), new UpdateError(tc, (o, step) -> roundEightBitTensors(o, 8)),
                new UpdateError(tc, (o, step) -> roundEightBitTensors(o, 4)), new UpdateError(tc, (o, step) -> {
                    if (step == 5) {
                        roundEightBitTensors(o, 8);
                    }
                })};
        double[][] runs = {fp32, replica(d, tc, true, probes[1]), replica(d, tc, false, probes[2]), replica(d, tc, false, probes[3]),
                replica(d, tc, false, probes[4])};
        System.out.println("step  fp32 loss | loss gap to fp32, update error: 8-bit | 8 bits | 4 bits | 8 bits once");
        for (int i = 0; i < fp32.length; i++) {
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%4d  %8.4f", i + 1, fp32[i]));
            for (int r = 1; r < runs.length; r++) {
                line.append(String.format(Locale.ROOT, " | %+7.2f%% %6.2f%%", gap(runs[r][i], fp32[i]), 100 * probes[r].error[i]));
            }
            System.out.println(line);
        }
        for (int r = 0; r < runs.length; r++) {
            int over = 0;
            int first = 0;
            double worst = 0;
            int at = 0;
            double errorSum = 0;
            double errorMax = 0;
            for (int i = 0; i < fp32.length; i++) {
                double g = Math.abs(gap(runs[r][i], fp32[i]));
                if (g > 2) {
                    over++;
                    first = first == 0 ? i + 1 : first;
                }
                if (g > worst) {
                    worst = g;
                    at = i + 1;
                }
                if (i > 0) {
                    errorSum += probes[r].error[i];
                    errorMax = Math.max(errorMax, probes[r].error[i]);
                }
            }
            System.out.printf(Locale.ROOT, "%s: update error mean %.3f%%, max %.3f%%; loss %d of %d steps more than 2%% from fp32's%s, worst %.2f%% at step %d%n",
                    names[r], 100 * errorSum / (fp32.length - 1), 100 * errorMax, over, fp32.length, over > 0 ? " (first at step " + first + ")" : "", worst, at);
        }
    }

    private static double gap(double x, double reference) {
        return 100 * (x - reference) / reference;
    }
}
