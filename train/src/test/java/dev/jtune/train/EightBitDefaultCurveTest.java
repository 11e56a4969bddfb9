package dev.jtune.train;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.train.loop.StepRecord;
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

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 12's 8-bit criterion on the embedded default: over 100 steps, bitsandbytes' 8-bit AdamW's loss curve stays
 * within 2% of fp32 AdamW's at every logged step. About 5 minutes on a 2-core cpu, so tagged {@code slow}: CI leaves
 * it out; run it with {@code mvn -pl train -am test -Dtest=EightBitDefaultCurveTest -Djtune.test.excludedGroups=gpu}.
 *
 * <p>Status (2026-12-05, cpu): it FAILS. 19 of the 100 steps differ by more than 2%, the first at step 18 (2.4%),
 * the most at step 30 (fp32's batch loss 7.107, 8-bit's 4.844: 32%; next worst 6.5% at step 31); the means of every 10 steps agree
 * within 2.9% (8-bit lower in 7 of 10 windows), the last 10 within 0.2%. The same fp32 AdamW computed in fp32 on the
 * host instead of in double follows the double curve to 4 digits at every step, so the gap is the 8-bit state's, not
 * rounding noise amplified by the run. Left as the issue states it, not loosened.
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
}
