package dev.jtune.train;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.loop.RunIdentity;
import dev.jtune.train.loop.StepRecord;
import dev.jtune.train.loop.Trainer;
import dev.jtune.train.loop.TrainerConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Issue 13's check on the embedded default (QLoRA r16 on a small random Gemma 3, the bundled data, cpu): each offload
 * mode forced on gives the loss curve of the same run without it, bit for bit, since offload moves bytes and changes no
 * arithmetic: the checkpointed activations in host memory, the layers' (NF4) weights in host memory, and both.
 */
class OffloadModesDefaultCurveTest {
    private static final int STEPS = 8;

    private static List<StepRecord> run(TrainCommand.DefaultSetup d, TrainerConfig tc, Path out) {
        try (Scope run = Scope.open("curve", MemoryCategory.WEIGHTS)) {
            Trainer trainer = Trainer.builder(tc, d.qlora(d.randomModel(), "default")).train(d.examples()).outputDir(out).padId(d.padId())
                    .info(new Trainer.RunInfo("offload", RunIdentity.builder().fixed("m", "default").build(), List.of())).build();
            try (trainer) {
                return trainer.run(Optional.empty(), Long.MAX_VALUE);
            }
        }
    }

    @Test
    void everyOffloadModeGivesTheSameLossCurve(@TempDir Path tmp) {
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(Device.CPU, new PrintStream(OutputStream.nullOutputStream()));
        TrainerConfig base = d.trainerConfig().toBuilder().maxSteps(STEPS).loggingSteps(1).save(TrainerConfig.SaveStrategy.NO, 0)
                .checkpointing(Gemma3Model.Checkpointing.LAYERS).build();
        List<StepRecord> expected = run(d, base, tmp.resolve("device"));
        assertEquals(STEPS, expected.size());
        TrainerConfig activations = base.toBuilder().activationPlacement(TrainerConfig.ActivationPlacement.HOST).build();
        TrainerConfig weights = base.toBuilder().weightPlacement(TrainerConfig.WeightPlacement.HOST).build();
        TrainerConfig both = activations.toBuilder().weightPlacement(TrainerConfig.WeightPlacement.HOST).build();
        for (TrainerConfig c : List.of(activations, weights, both)) {
            String what = "activations " + c.activationPlacement() + ", weights " + c.weightPlacement();
            List<StepRecord> got = run(d, c, tmp.resolve(what.replace(' ', '-').replace(",", "")));
            assertEquals(expected.size(), got.size(), what);
            for (int i = 0; i < expected.size(); i++) {
                assertEquals(expected.get(i).loss(), got.get(i).loss(), 0.0, what + ": loss at step " + expected.get(i).step());
            }
        }
    }
}
