package dev.jtune.train.loop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.testing.Seeds;
import dev.jtune.gemma.testing.TestImages;
import dev.jtune.train.data.Example;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The trainer on an image-text model (the tiny Gemma3ForConditionalGeneration of the gemma3-mm-tiny fixture, cpu,
 * fp32): records whose answer only the image tells (a red or a blue ellipse) are learned with the vision tower frozen,
 * what is frozen stays bit for bit, what is saved is what HF names, and what does not fit is refused.
 */
class ImageTrainerTest {
    @TempDir
    Path dir;

    static Path fixture() {
        try {
            return Path.of(ImageTrainerTest.class.getResource("/gemma3-mm-tiny/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static TrainerConfig config(long steps, double lr) {
        return TrainerConfig.builder().epochs(100).maxSteps(steps).batchSize(4).gradientAccumulation(1).learningRate(lr)
                .loggingSteps(1).save(TrainerConfig.SaveStrategy.NO, 0).seed(7).build();
    }

    /** The projector and language model trained in full, the tower frozen: the loss falls to at most 0.7 of where it starts. */
    @Test
    void anImageTextModelLearnsWhatOnlyTheImageTellsWithItsTowerFrozen() throws IOException {
        try (Scope run = Scope.open("image trainer", MemoryCategory.WEIGHTS)) {
            Gemma3MultimodalModel model = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
            float[] towerBefore = firstOf(model, Gemma3MultimodalModel.VISION_TOWER).toFloatArray();
            float[] projectorBefore = firstOf(model, Gemma3MultimodalModel.PROJECTOR).toFloatArray();
            Trainable t = Trainable.full(model, EnumSet.of(Trainable.Part.PROJECTOR, Trainable.Part.LANGUAGE_MODEL), "tiny-mm");
            assertTrue(t.namedParameters().keySet().stream().noneMatch(n -> n.startsWith(Gemma3MultimodalModel.VISION_TOWER)),
                    "the frozen tower's weights are not trained");
            List<StepRecord> log = train(t, examples(model.visionConfig(), 64, Seeds.random()), 40, 3e-3);
            double first = mean(log.subList(0, 3));
            double last = mean(log.subList(log.size() - 3, log.size()));
            System.out.printf("image trainer: loss %.4f (first 3 steps) -> %.4f (last 3)%n", first, last);
            assertTrue(last <= 0.7 * first, "loss " + first + " -> " + last + ": not at most 0.7 of the first");
            assertArrayEquals(towerBefore, firstOf(model, Gemma3MultimodalModel.VISION_TOWER).toFloatArray(), "the frozen tower is unchanged");
            assertFalse(java.util.Arrays.equals(projectorBefore, firstOf(model, Gemma3MultimodalModel.PROJECTOR).toFloatArray()),
                    "the trained projector moved");
            // saved as HF reads it (the source layout), and restored into a fresh model
            Path saved = dir.resolve("saved");
            t.save(saved);
            try (Scope fresh = Scope.open("fresh")) {
                Gemma3MultimodalModel again = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
                Trainable u = Trainable.full(again, EnumSet.of(Trainable.Part.PROJECTOR, Trainable.Part.LANGUAGE_MODEL), "tiny-mm");
                u.restore(saved);
                for (Map.Entry<String, Tensor> e : t.namedParameters().entrySet()) {
                    assertArrayEquals(e.getValue().toFloatArray(), u.namedParameters().get(e.getKey()).toFloatArray(), "restored " + e.getKey());
                }
            }
        }
    }

    /**
     * Gemma3-Finetune's optimizer groups: --vision_lr and --projector_lr give the tower's and projector's parameters
     * their own rate (a multiple of the main one), and LayerNorm parameters and biases get no weight decay while
     * Gemma's RMSNorm weights keep it, as its create_optimizer does. With a tower rate of 0 and weight decay on, the
     * trained tower does not move at all while the projector and language model do.
     */
    @Test
    void towerAndProjectorLearningRatesFormGroupsAsTheSeedsTrainerDoes() throws IOException {
        try (Scope run = Scope.open("param groups", MemoryCategory.WEIGHTS)) {
            Gemma3MultimodalModel model = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
            Trainable t = Trainable.full(model, EnumSet.allOf(Trainable.Part.class), "tiny-mm");
            TrainerConfig config = config(3, 1e-3).toBuilder().weightDecay(0.1).groupLearningRates(List.of(
                    new TrainerConfig.GroupLearningRate("multi_modal_projector", 2e-4),
                    new TrainerConfig.GroupLearningRate("vision_tower", 0))).build();
            dev.jtune.engine.optim.ParamGroup.Assignment groups = t.paramGroups(config);
            String tower = Gemma3MultimodalModel.VISION_TOWER + "encoder.layers.0.";
            assertEquals(new dev.jtune.engine.optim.ParamGroup("vision_tower", 0, true), groups.of(tower + "self_attn.q_proj.weight"));
            assertEquals(new dev.jtune.engine.optim.ParamGroup("vision_tower, no decay", 0, false), groups.of(tower + "self_attn.q_proj.bias"));
            assertEquals(new dev.jtune.engine.optim.ParamGroup("vision_tower, no decay", 0, false), groups.of(tower + "layer_norm1.weight"));
            assertEquals(new dev.jtune.engine.optim.ParamGroup("multi_modal_projector", 0.2, true),
                    groups.of(Gemma3MultimodalModel.PROJECTOR + "mm_input_projection_weight"));
            // Gemma's RMSNorm is not torch's LayerNorm: decayed, as in the seed's trainer
            assertEquals(dev.jtune.engine.optim.ParamGroup.DEFAULT.decay(),
                    groups.of(Gemma3MultimodalModel.LANGUAGE_MODEL + "layers.0.input_layernorm.weight").decay());
            assertEquals(new dev.jtune.engine.optim.ParamGroup("default", 1, true),
                    groups.of(Gemma3MultimodalModel.LANGUAGE_MODEL + "layers.0.mlp.down_proj.weight"));

            float[] towerBefore = firstOf(model, Gemma3MultimodalModel.VISION_TOWER).toFloatArray();
            float[] projectorBefore = firstOf(model, Gemma3MultimodalModel.PROJECTOR).toFloatArray();
            float[] textBefore = firstOf(model, Gemma3MultimodalModel.LANGUAGE_MODEL).toFloatArray();
            Trainer trainer = Trainer.builder(config, t).train(examples(model.visionConfig(), 8, Seeds.random())).outputDir(dir.resolve("groups"))
                    .info(new Trainer.RunInfo("image test", RunIdentity.builder().fixed("model", "tiny-mm").build(), List.of())).build();
            trainer.run(Optional.empty(), Long.MAX_VALUE);
            assertArrayEquals(towerBefore, firstOf(model, Gemma3MultimodalModel.VISION_TOWER).toFloatArray(), "a tower at rate 0 stays");
            assertFalse(java.util.Arrays.equals(projectorBefore, firstOf(model, Gemma3MultimodalModel.PROJECTOR).toFloatArray()), "the projector moved");
            assertFalse(java.util.Arrays.equals(textBefore, firstOf(model, Gemma3MultimodalModel.LANGUAGE_MODEL).toFloatArray()), "the language model moved");
        }
    }

    /**
     * Gemma3-Finetune's --vision_lora: adapters on every linear module of the frozen tower's layers beside the language
     * model's (whose adapters start as without it). Training moves the tower's adapters and neither base; the adapter
     * names the tower's modules as peft does on Gemma3ForConditionalGeneration, and read back onto a fresh model (and
     * merged into it) it computes what the trained one does.
     */
    @Test
    void visionLoraAdaptsTheFrozenTowersLinearsAndRoundTrips() throws IOException {
        try (Scope run = Scope.open("vision lora", MemoryCategory.WEIGHTS)) {
            Gemma3MultimodalModel model = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
            Map<String, float[]> textOnlyA = new java.util.HashMap<>();
            try (Scope other = Scope.open("text-only adapters")) {
                Gemma3MultimodalModel plain = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
                Trainable.lora(plain, LoraConfig.of(8, 16), 11, "tiny-mm").namedParameters()
                        .forEach((k, v) -> textOnlyA.put(k, v.toFloatArray()));
            }
            Trainable t = Trainable.lora(model, LoraConfig.of(8, 16), 11, "tiny-mm", java.util.Set.of(),
                    EnumSet.of(Trainable.Part.LANGUAGE_MODEL, Trainable.Part.VISION_TOWER));
            List<String> tower = t.namedParameters().keySet().stream().filter(k -> k.startsWith("base_model.model.model.vision_tower.")).toList();
            int layers = model.visionTower().layers().size();
            assertEquals(layers * 6 * 2, tower.size(), "A and B on q/k/v/out_proj, fc1 and fc2 of every tower layer: " + tower);
            assertTrue(tower.contains("base_model.model.model.vision_tower.encoder.layers.0.mlp.fc1.lora_A.weight"), tower.toString());
            textOnlyA.forEach((k, v) -> assertArrayEquals(v, t.namedParameters().get(k).toFloatArray(), k + " starts as without the tower's"));

            float[] towerBase = firstOf(model, Gemma3MultimodalModel.VISION_TOWER).toFloatArray();
            String towerB = "base_model.model.model.vision_tower.encoder.layers.1.self_attn.q_proj.lora_B.weight";
            List<StepRecord> log = train(t, examples(model.visionConfig(), 8, Seeds.random()), 3, 1e-3);
            assertEquals(3, log.size());
            assertTrue(java.util.Arrays.stream(t.namedParameters().get(towerB).toDoubleArray()).anyMatch(x -> x != 0), "the tower's adapter trained");
            assertArrayEquals(towerBase, firstOf(model, Gemma3MultimodalModel.VISION_TOWER).toFloatArray(), "the tower's base stays frozen");

            Path saved = dir.resolve("vision-lora");
            t.save(saved);
            var config = new com.fasterxml.jackson.databind.ObjectMapper().readTree(saved.resolve(PeftAdapter.CONFIG_FILE).toFile());
            List<String> targets = new ArrayList<>();
            config.path("target_modules").forEach(n -> targets.add(n.asText()));
            assertTrue(targets.contains("model.vision_tower.encoder.layers.0.self_attn.out_proj")
                    && targets.contains("model.language_model.layers.0.self_attn.q_proj"), targets.toString());

            // the same batch through the trained model, a fresh one with the adapter read back, and that one merged
            Batcher b = new Batcher(examples(model.visionConfig(), 2, new Random(5)), 2, 1, 0);
            Batcher.Batch batch = b.batch(b.epoch(0).getFirst(), Device.CPU);
            t.eval();
            float[] trained;
            try (Scope s = Scope.open("trained"); dev.jtune.engine.Autograd.GradMode off = dev.jtune.engine.Autograd.noGrad()) {
                trained = t.loss(batch, Gemma3Model.Options.defaults(), 0).toFloatArray();
            }
            Gemma3MultimodalModel fresh = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
            PeftAdapter.Loaded loaded = PeftAdapter.load(saved, fresh, DType.F32);
            assertEquals(t.namedParameters().size() / 2, loaded.adapters().size(), "every adapter read back");
            Trainable u = Trainable.full(fresh, EnumSet.of(Trainable.Part.PROJECTOR), "tiny-mm"); // a wrapper to run the loss
            try (Scope s = Scope.open("reloaded"); dev.jtune.engine.Autograd.GradMode off = dev.jtune.engine.Autograd.noGrad()) {
                assertArrayEquals(trained, u.loss(batch, Gemma3Model.Options.defaults(), 0).toFloatArray(), "the adapter read back computes the same loss");
            }
            dev.jtune.gemma.lora.LoraMerge.merge(fresh, loaded.adapters());
            try (Scope s = Scope.open("merged"); dev.jtune.engine.Autograd.GradMode off = dev.jtune.engine.Autograd.noGrad()) {
                float merged = u.loss(batch, Gemma3Model.Options.defaults(), 0).toFloatArray()[0];
                assertEquals(trained[0], merged, 1e-5 * Math.abs(trained[0]), "merged into the tower's and language model's weights");
            }
        }
    }

    /**
     * LoRA on the language model with the tower and projector frozen: every adapter trains (the loss falls), nothing
     * else moves, and the adapter names its modules as peft does on Gemma3ForConditionalGeneration (transformers 4.52+).
     */
    @Test
    void loraOnAnImageTextModelTrainsTheLanguageModelsAdaptersOnly() throws IOException {
        try (Scope run = Scope.open("image lora", MemoryCategory.WEIGHTS)) {
            Gemma3MultimodalModel model = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
            float[] projectorBefore = firstOf(model, Gemma3MultimodalModel.PROJECTOR).toFloatArray();
            Trainable t = Trainable.lora(model, LoraConfig.of(8, 16), 11, "tiny-mm");
            assertTrue(t.namedParameters().keySet().stream().allMatch(n -> n.startsWith("base_model.model.model.language_model.layers.")),
                    "peft's names on Gemma3ForConditionalGeneration: " + t.namedParameters().keySet().iterator().next());
            List<Example> data = examples(model.visionConfig(), 64, Seeds.random());
            Trainer trainer = Trainer.builder(config(40, 1e-2), t).train(data).eval(data).outputDir(dir.resolve("run-lora"))
                    .info(new Trainer.RunInfo("image test", RunIdentity.builder().fixed("model", "tiny-mm").build(), List.of())).build();
            double first = trainer.evaluate();
            List<StepRecord> log = trainer.run(Optional.empty(), Long.MAX_VALUE);
            double last = trainer.evaluate();
            System.out.printf("image LoRA: loss over the 64 records %.4f before -> %.4f after; steps %s%n", first, last,
                    log.stream().map(r -> String.format(java.util.Locale.ROOT, "%.3f", r.loss())).toList());
            // LoRA on this tiny random model plateaus near 5 (the frozen tied head): the full test above shows the images
            // are learned from; here the adapters must have trained, every one of them. Measured on the whole set before
            // and after (a batch of 4's loss swings by +-0.6 near the plateau: comparing the first and last steps' failed
            // at 3e-2 with seed 78346063646516, where the last steps also rose; at 1e-2 the set's loss falls to ~0.79 of
            // where it starts over seeds 1-5 and that one)
            assertTrue(last < 0.9 * first, "loss over the set " + first + " -> " + last + ": the adapters did not lower it");
            t.namedParameters().forEach((name, p) -> {
                if (name.endsWith("lora_B.weight")) {
                    assertTrue(java.util.Arrays.stream(p.toDoubleArray()).anyMatch(v -> v != 0), name + " is still peft's zeros");
                }
            });
            assertArrayEquals(projectorBefore, firstOf(model, Gemma3MultimodalModel.PROJECTOR).toFloatArray(), "the frozen projector is unchanged");
            Path saved = dir.resolve("adapter");
            t.save(saved);
            JsonNode config = new ObjectMapper().readTree(saved.resolve(PeftAdapter.CONFIG_FILE).toFile());
            assertEquals("Gemma3ForConditionalGeneration", config.path("auto_mapping").path("base_model_class").asText());
            try (SafeTensorsFile file = SafeTensorsFile.open(saved.resolve(PeftAdapter.WEIGHTS_FILE))) {
                assertEquals(new java.util.TreeSet<>(t.namedParameters().keySet()), new java.util.TreeSet<>(file.names()),
                        "the adapter file holds exactly the trained matrices");
            }
        }
    }

    /** LoRA with the projector trained in full beside it: both train, and both come back from what is saved. */
    @Test
    void loraWithTheProjectorTrainedBesideItSavesAndRestoresBoth() {
        try (Scope run = Scope.open("image lora + projector", MemoryCategory.WEIGHTS)) {
            Gemma3MultimodalModel model = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
            float[] projectorBefore = firstOf(model, Gemma3MultimodalModel.PROJECTOR).toFloatArray();
            Trainable t = Trainable.lora(model, LoraConfig.of(8, 16), 11, "tiny-mm", EnumSet.of(Trainable.Part.PROJECTOR));
            assertTrue(t.namedParameters().keySet().stream().anyMatch(n -> n.startsWith(Gemma3MultimodalModel.PROJECTOR)), "the projector trains");
            train(t, examples(model.visionConfig(), 16, Seeds.random()), 4, 3e-3);
            assertFalse(java.util.Arrays.equals(projectorBefore, firstOf(model, Gemma3MultimodalModel.PROJECTOR).toFloatArray()), "the projector moved");
            Path saved = dir.resolve("adapter+projector");
            t.save(saved);
            assertTrue(java.nio.file.Files.isRegularFile(saved.resolve(Trainable.NON_LORA_FILE)), "the projector's weights beside the adapter");
            try (Scope fresh = Scope.open("fresh")) {
                Gemma3MultimodalModel again = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
                Trainable u = Trainable.lora(again, LoraConfig.of(8, 16), 12, "tiny-mm", EnumSet.of(Trainable.Part.PROJECTOR));
                u.restore(saved);
                for (Map.Entry<String, Tensor> e : t.namedParameters().entrySet()) {
                    assertArrayEquals(e.getValue().toFloatArray(), u.namedParameters().get(e.getKey()).toFloatArray(), "restored " + e.getKey());
                }
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** Image records on a text-only model, and packed image records, are refused with what to do. */
    @Test
    void whatDoesNotFitIsRefused() throws IOException {
        try (Scope run = Scope.open("refusals", MemoryCategory.WEIGHTS)) {
            Gemma3MultimodalModel model = Gemma3MultimodalModel.load(fixture(), Device.CPU, DType.F32);
            List<Example> ex = examples(model.visionConfig(), 4, Seeds.random());
            Trainable text = Trainable.full(model.text(), "text only");
            Batcher b = new Batcher(ex, 2, 1, 0);
            RunException e = assertThrows(RunException.class, () -> text.loss(b.batch(b.epoch(0).getFirst(), Device.CPU),
                    Gemma3Model.Options.defaults(), 0));
            assertTrue(e.getMessage().contains("no vision tower"), e.getMessage());
            IllegalArgumentException p = assertThrows(IllegalArgumentException.class,
                    () -> new Batcher(ex, 2, 1, 0, new Batching(Batching.Order.RANDOM, 64)));
            assertTrue(p.getMessage().contains("--packing"), p.getMessage());
        }
    }

    private List<StepRecord> train(Trainable t, List<Example> examples, long steps, double lr) {
        Trainer trainer = Trainer.builder(config(steps, lr), t).train(examples).outputDir(dir.resolve("run-" + steps + "-" + t.isLora()))
                .info(new Trainer.RunInfo("image test", RunIdentity.builder().fixed("model", "tiny-mm").build(), List.of())).build();
        return trainer.run(Optional.empty(), Long.MAX_VALUE);
    }

    private static double mean(List<StepRecord> records) {
        return records.stream().mapToDouble(StepRecord::loss).average().orElseThrow();
    }

    private static Tensor firstOf(Gemma3MultimodalModel model, String prefix) {
        return model.namedParameters().entrySet().stream().filter(e -> e.getKey().startsWith(prefix)).findFirst().orElseThrow().getValue().tensor();
    }

    /**
     * {@code n} records, half of each class in random order: {@code <bos> <start_of_image> image tokens
     * <end_of_image> answer}, the answer (id 10 for red, 20 for blue) the only label, each with its drawn image.
     */
    private List<Example> examples(Gemma3VisionConfig vc, int n, Random rnd) throws IOException {
        return examples(vc, n, rnd, dir);
    }

    /** {@link #examples(Gemma3VisionConfig, int, Random)} with the images drawn into {@code dir}. */
    static List<Example> examples(Gemma3VisionConfig vc, int n, Random rnd, Path dir) throws IOException {
        List<Example> out = new ArrayList<>();
        int length = vc.mmTokensPerImage() + 4;
        for (int i = 0; i < n; i++) {
            int cls = rnd.nextInt(2);
            int[] ids = new int[length];
            int[] labels = new int[length];
            java.util.Arrays.fill(labels, Example.IGNORE);
            ids[0] = 2;
            ids[1] = vc.boiToken();
            for (int k = 0; k < vc.mmTokensPerImage(); k++) {
                ids[2 + k] = vc.imageToken();
            }
            ids[2 + vc.mmTokensPerImage()] = vc.eoiToken();
            ids[length - 1] = cls == 0 ? 10 : 20;
            labels[length - 1] = ids[length - 1];
            out.add(new Example(ids, labels, List.of(TestImages.ellipse(dir.resolve("r" + i + ".png"), cls, rnd))));
        }
        return out;
    }
}
