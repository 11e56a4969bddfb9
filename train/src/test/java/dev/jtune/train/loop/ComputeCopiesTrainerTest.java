package dev.jtune.train.loop;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.model.Gemma3Model;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The trainer's one-launch bf16 copies of LoRA's A and B ({@code Residency.computeCopies}) change nothing a run computes:
 * on a bf16 base (whose adapters' products are bf16) the loss curve and the trained adapters with the copies equal, bit
 * for bit, those of a run casting each matrix itself ({@code -Djtune.computeCopies=false}), with checkpointed layers
 * (the copies found in the first run and the recomputation) and gradient accumulation (one copy a step, found by both
 * micro-batches).
 */
class ComputeCopiesTrainerTest {
    private static final String PROPERTY = "jtune.computeCopies";

    record Run(List<Double> losses, double[] adapters) {
    }

    private static Run train(Path out, boolean copies) throws IOException {
        String before = System.getProperty(PROPERTY);
        System.setProperty(PROPERTY, Boolean.toString(copies));
        try (Scope model = Scope.open("model", MemoryCategory.WEIGHTS)) {
            Gemma3Model m = Gemma3Model.random(TrainerTest.tinyConfig(), Device.CPU, DType.BF16, 1);
            Trainable t = Trainable.lora(m, new LoraConfig(4, 8, 0.0, LoraConfig.ALL_LINEAR, List.of("lm_head", "embed_tokens"), -1), 3, "tiny");
            assertFalse(t.castAdapterWeights().isEmpty(), "a bf16 base's adapters are cast for their products");
            TrainerConfig cfg = TrainerConfig.builder().epochs(1).maxSteps(6).batchSize(4).gradientAccumulation(2).learningRate(2e-2)
                    .checkpointing(Gemma3Model.Checkpointing.LAYERS).loggingSteps(1).save(TrainerConfig.SaveStrategy.NO, 0).seed(7).build();
            try (Trainer trainer = Trainer.builder(cfg, t).train(TrainerTest.examples(40, 11)).outputDir(out)
                    .info(new Trainer.RunInfo("test", RunIdentity.builder().fixed("model", "tiny").build(), List.of())).build()) {
                assertEquals(copies, trainer.makesComputeCopies(), "the switch");
                List<Double> losses = trainer.run(java.util.Optional.empty(), Long.MAX_VALUE).stream().map(StepRecord::loss).toList();
                double[] adapters = t.namedParameters().values().stream().flatMapToDouble(p -> java.util.Arrays.stream(p.toDoubleArray())).toArray();
                return new Run(losses, adapters);
            }
        } finally {
            if (before == null) {
                System.clearProperty(PROPERTY);
            } else {
                System.setProperty(PROPERTY, before);
            }
        }
    }

    @Test
    void theCopiesChangeNoLossAndNoWeight(@TempDir Path tmp) throws IOException {
        Run with = train(tmp.resolve("copies"), true);
        Run without = train(tmp.resolve("casts"), false);
        assertEquals(6, with.losses().size());
        assertTrue(with.losses().stream().allMatch(Double::isFinite), "finite losses: " + with.losses());
        assertEquals(without.losses(), with.losses(), "the loss curve");
        assertArrayEquals(without.adapters(), with.adapters(), 0, "the trained adapters");
    }
}
