package dev.jtune.train.loop;

import dev.jtune.testing.Seeds;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.data.Example;
import dev.jtune.train.report.Progress;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The loop on the cpu with a tiny random Gemma 3: learning, artifacts, checkpoints, and exact resume. */
public class TrainerTest {
    public static Gemma3Config tinyConfig() throws IOException {
        try (var in = TrainerTest.class.getResourceAsStream("/gemma3-tiny-config.json")) {
            return Gemma3Config.parse(new String(in.readAllBytes()), "gemma3-tiny-config.json");
        }
    }

    /** Short "conversations": a prompt of random tokens (not trained on) and an answer that repeats a pattern. */
    static List<Example> examples(int n, long seed) {
        Random rnd = Seeds.random(seed);
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int promptLen = 3 + rnd.nextInt(6);
            int answerLen = 4 + rnd.nextInt(6);
            int[] ids = new int[promptLen + answerLen];
            int[] labels = new int[ids.length];
            ids[0] = 2;
            labels[0] = Example.IGNORE;
            for (int p = 1; p < promptLen; p++) {
                ids[p] = 10 + rnd.nextInt(400);
                labels[p] = Example.IGNORE;
            }
            for (int a = 0; a < answerLen; a++) {
                ids[promptLen + a] = 100 + (a % 5) * 7;
                labels[promptLen + a] = ids[promptLen + a];
            }
            out.add(new Example(ids, labels));
        }
        return out;
    }

    static TrainerConfig config(long maxSteps, long saveSteps, int limit) {
        return TrainerConfig.builder().epochs(1).maxSteps(maxSteps).batchSize(4).gradientAccumulation(2).learningRate(2e-2)
                .warmupRatio(0.1).checkpointing(dev.jtune.gemma.model.Gemma3Model.Checkpointing.LAYERS).loggingSteps(1)
                .save(TrainerConfig.SaveStrategy.STEPS, saveSteps).saveTotalLimit(limit).eval(TrainerConfig.SaveStrategy.STEPS, 5)
                .evalBatchSize(3).seed(7).build();
    }

    private static List<StepRecord> train(Path out, TrainerConfig cfg, long stopAfter, boolean resume, boolean lora) throws IOException {
        try (Scope model = Scope.open("model", MemoryCategory.WEIGHTS)) {
            Gemma3Model m = Gemma3Model.random(tinyConfig(), Device.CPU, DType.F32, 1);
            // LoRA cannot move a random base far: its tied embedding (std 0.02) caps the logits; full fine-tuning can
            Trainable t = lora ? Trainable.lora(m, new LoraConfig(4, 8, 0.1, LoraConfig.ALL_LINEAR, List.of("lm_head", "embed_tokens"), -1), 3, "tiny")
                    : Trainable.full(m, "tiny");
            Trainer trainer = Trainer.builder(cfg, t).train(examples(40, 11)).eval(examples(6, 12)).outputDir(out)
                    .info(new Trainer.RunInfo("test", RunIdentity.builder().fixed("model", "tiny").build(), List.of())).build();
            Optional<Path> from = resume ? trainer.checkpoints().latest() : Optional.empty();
            return trainer.run(from, stopAfter);
        }
    }

    @Test
    void lossFallsAndTheRunLeavesItsArtifacts(@TempDir Path out) throws IOException {
        List<StepRecord> log = train(out, config(24, 10, 1), Long.MAX_VALUE, false, false);
        assertTrue(log.get(log.size() - 1).loss() < 0.5 * log.get(0).loss(), "losses " + log.stream().map(r -> String.format("%d:%.3f/%.1e", r.step(), r.loss(), r.learningRate())).toList());
        assertTrue(Files.exists(out.resolve("config.json")) && Files.exists(out.resolve("model.safetensors")), "final full model");
        assertTrue(Files.size(out.resolve("report.html")) > 1000, "report");
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertEquals(log.size(), lines.size());
        JsonNode first = new ObjectMapper().readTree(lines.get(0));
        assertTrue(first.has("loss") && first.has("grad_norm") && first.has("learning_rate") && first.has("tokens_per_second"), lines.get(0));
        assertTrue(log.stream().anyMatch(StepRecord::hasEval), "eval loss logged");
        // save_total_limit 1: only the newest of checkpoint-10, -20 and the final -24 is kept, and no temporary directory
        try (var files = Files.list(out)) {
            List<String> names = files.map(p -> p.getFileName().toString()).filter(n -> n.contains("checkpoint")).toList();
            assertEquals(List.of("checkpoint-24"), names, "the final step is always checkpointed");
        }
    }

    @Test
    void aResumedRunContinuesTheUninterruptedLossCurve(@TempDir Path tmp) throws IOException {
        TrainerConfig cfg = config(12, 4, 0);
        List<StepRecord> whole = train(tmp.resolve("whole"), cfg, Long.MAX_VALUE, false, true);
        Path broken = tmp.resolve("interrupted");
        train(broken, cfg, 9, false, true); // interrupted after step 9: the newest checkpoint is step 8
        assertTrue(Files.isDirectory(broken.resolve("checkpoint-8")));
        List<StepRecord> resumed = train(broken, cfg, Long.MAX_VALUE, true, true);
        assertTrue(Files.exists(broken.resolve(PeftAdapter.CONFIG_FILE)) && Files.exists(broken.resolve(PeftAdapter.WEIGHTS_FILE)), "final adapter");
        assertEquals(whole.size(), resumed.size(), "the resumed run's log holds the whole run");
        for (int i = 0; i < whole.size(); i++) {
            assertEquals(whole.get(i).step(), resumed.get(i).step());
            assertEquals(whole.get(i).loss(), resumed.get(i).loss(), 0.0, "loss at step " + whole.get(i).step());
        }
    }
}
