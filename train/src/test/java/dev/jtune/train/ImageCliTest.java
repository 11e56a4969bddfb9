package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import dev.jtune.gemma.safetensors.SafeTensorsWriter;
import dev.jtune.gemma.safetensors.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The train command on image records as Gemma3-Finetune's users write them (LLaVA "image" fields, {@code <image>}
 * placeholders, {@code --image_folder}, its freeze flags), on a tiny Gemma3ForConditionalGeneration whose vocabulary
 * and image token ids are the real ones (the gemma3-mm-tiny fixture's weights, its embedding widened to 262,208 rows),
 * so the bundled tokenizer fits; and what does not fit, refused with what to do.
 */
class ImageCliTest {
    @TempDir
    Path tmp;

    /** QLoRA on the language model with the tower and projector frozen: runs, and writes peft's adapter for the image-text model. */
    @Test
    void qloraOnImageRecordsWritesAnAdapterForTheImageTextModel() throws IOException {
        Path out = tmp.resolve("out");
        CliFixtures.Run r = train(out, 6, "--lora_enable", "True", "--freeze_llm", "True", "--bits", "4", "--freeze_vision_tower", "True",
                "--freeze_projector", "True", "--lora_rank", "4", "--lora_alpha", "8");
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("image-text model: LoRA on the language model"), r.all());
        assertTrue(r.out().contains("image-text model: planned with the vision tower and projector, and 1 image in each sequence (the data's most)"),
                "the plan counts the tower and the data's images: " + r.all());
        try (SafeTensorsFile adapter = SafeTensorsFile.open(out.resolve(PeftAdapter.WEIGHTS_FILE))) {
            assertTrue(!adapter.names().isEmpty() && adapter.names().stream().allMatch(n -> n.startsWith("base_model.model.model.language_model.layers.")),
                    adapter.names().toString());
        }
        // exact module names, as Gemma3-Finetune's: suffixes would make peft adapt the tower's q/k/v_proj too
        var targets = new ObjectMapper().readTree(out.resolve(PeftAdapter.CONFIG_FILE).toFile()).path("target_modules");
        assertTrue(targets.size() > 0, targets.toString());
        targets.forEach(n -> assertTrue(n.asText().startsWith("model.language_model.layers."), "target " + n));
        // merge reads the image-text adapter's names back and folds it into the base's language model
        CliFixtures.Run merged = merge(out);
        assertEquals(0, merged.rc(), merged.all());
        assertTrue(Files.isRegularFile(tmp.resolve("merged").resolve("model.safetensors")), merged.all());
    }

    /**
     * The seed's LoRA script on an image-text model: LoRA on the frozen language model, the tower and projector trained
     * in full beside it (Gemma3-Finetune's defaults), saved beside the adapter by their HF names.
     */
    @Test
    void loraWithTheTowerAndProjectorTrainedBesideItWritesTheirWeightsBesideTheAdapter() throws IOException {
        Path out = tmp.resolve("out");
        CliFixtures.Run r = train(out, 4, "--lora_enable", "True", "--freeze_llm", "True", "--freeze_vision_tower", "False",
                "--freeze_projector", "False", "--lora_rank", "4");
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("trained in full beside it: [VISION_TOWER, PROJECTOR]"), r.all());
        CliFixtures.Run merged = merge(out);
        assertEquals(0, merged.rc(), merged.all());
        assertTrue(merged.out().contains("with the") && merged.out().contains("image-text"), merged.all());
        try (Scope s = Scope.open("merged");
             SafeTensorsFile nonLora = SafeTensorsFile.open(out.resolve(dev.jtune.train.loop.Trainable.NON_LORA_FILE))) {
            assertTrue(nonLora.names().stream().anyMatch(n -> n.startsWith("model.vision_tower."))
                    && nonLora.names().stream().anyMatch(n -> n.startsWith("model.multi_modal_projector."))
                    && nonLora.names().stream().noneMatch(n -> n.startsWith("model.language_model.")), nonLora.names().toString());
            // the merged checkpoint is the whole image-text model: the trained tower and projector as non_lora has them (in
            // the base's dtype), the language model with the adapter folded in
            DType baseType = MergeCommand.baseDType(tmp.resolve("mm-model"), System.err);
            var result = dev.jtune.gemma.vision.Gemma3MultimodalModel.load(tmp.resolve("merged"), Device.CPU, DType.F32);
            var base = dev.jtune.gemma.vision.Gemma3MultimodalModel.load(tmp.resolve("mm-model"), Device.CPU, DType.F32);
            for (String name : nonLora.names()) {
                org.junit.jupiter.api.Assertions.assertArrayEquals(nonLora.load(name, Device.CPU).cast(baseType).cast(DType.F32).toFloatArray(),
                        result.namedParameters().get(name).tensor().toFloatArray(), name + " as trained");
            }
            String adapted = "model.language_model.layers.0.self_attn.q_proj.weight";
            assertTrue(!java.util.Arrays.equals(base.namedParameters().get(adapted).tensor().toFloatArray(),
                    result.namedParameters().get(adapted).tensor().toFloatArray()), "the adapter is folded into " + adapted);
            String untouched = "model.language_model.embed_tokens.weight";
            org.junit.jupiter.api.Assertions.assertArrayEquals(base.namedParameters().get(untouched).tensor().toFloatArray(),
                    result.namedParameters().get(untouched).tensor().toFloatArray(), untouched + " as in the base");
        }
        // generate applies the adapter and the parts trained beside it
        CliFixtures.Run g = CliFixtures.run("generate", "--adapter_path", out.toString(), "--model_path", tmp.resolve("mm-model").toString(),
                "--image", tmp.resolve("images").resolve("p0.png").toString(), "--prompt", "What is it?", "--max_new_tokens", "2", "--device", "cpu");
        assertEquals(0, g.rc(), g.all());
        assertTrue(g.err().contains("tensors of its " + dev.jtune.train.loop.Trainable.NON_LORA_FILE), g.all());
    }

    /** --vision_lora: LoRA on the frozen tower beside the language model's, written as peft names it, merged into both. */
    @Test
    void visionLoraTrainsAndMergesTheTowersAdapters() throws IOException {
        Path out = tmp.resolve("out");
        CliFixtures.Run r = train(out, 4, "--lora_enable", "True", "--vision_lora", "True", "--freeze_llm", "True",
                "--freeze_vision_tower", "True", "--freeze_projector", "True", "--lora_rank", "4", "--learning_rate", "1e-3");
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("LoRA on the language model and the vision tower"), r.all());
        String q = "model.vision_tower.encoder.layers.0.self_attn.q_proj";
        try (SafeTensorsFile adapter = SafeTensorsFile.open(out.resolve(PeftAdapter.WEIGHTS_FILE))) {
            assertTrue(adapter.contains("base_model.model." + q + ".lora_B.weight"), adapter.names().toString());
        }
        CliFixtures.Run merged = merge(out);
        assertEquals(0, merged.rc(), merged.all());
        try (Scope s = Scope.open("merged")) {
            var base = dev.jtune.gemma.vision.Gemma3MultimodalModel.load(tmp.resolve("mm-model"), Device.CPU, DType.F32);
            var result = dev.jtune.gemma.vision.Gemma3MultimodalModel.load(tmp.resolve("merged"), Device.CPU, DType.F32);
            assertTrue(!java.util.Arrays.equals(base.namedParameters().get(q + ".weight").tensor().toFloatArray(),
                    result.namedParameters().get(q + ".weight").tensor().toFloatArray()), "the tower's adapter is folded into " + q);
            org.junit.jupiter.api.Assertions.assertArrayEquals(base.namedParameters().get(q + ".bias").tensor().toFloatArray(),
                    result.namedParameters().get(q + ".bias").tensor().toFloatArray(), "its bias stays");
        }
    }

    /** The language model and projector trained in full, the tower frozen: runs, and writes the checkpoint in the source's layout. */
    @Test
    void fullFineTuningWithTheTowerFrozenWritesTheImageTextCheckpoint() throws IOException {
        Path out = tmp.resolve("out");
        CliFixtures.Run r = train(out, 4, "--freeze_vision_tower", "True");
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("trained in full: [PROJECTOR, LANGUAGE_MODEL]; frozen: [VISION_TOWER]"), r.all());
        try (SafeTensorsFile saved = SafeTensorsFile.open(out.resolve("model.safetensors"))) {
            assertTrue(saved.contains("language_model.model.embed_tokens.weight") && saved.names().stream().anyMatch(n -> n.startsWith("vision_tower.")),
                    "the source's key layout: " + saved.names().subList(0, 3));
        }
    }

    /** {@code jtune generate --image}: an image-text checkpoint answers about an image; a text-only one refuses the flag. */
    @Test
    void generateAnswersAboutAnImage() throws IOException {
        Path model = checkpoint();
        data(1); // draws tmp/images/p0.png
        Path image = tmp.resolve("images").resolve("p0.png");
        CliFixtures.Run r = CliFixtures.run("generate", "--model_path", model.toString(), "--image", image.toString(),
                "--prompt", "What colour is the shape?", "--chat", "--max_new_tokens", "3", "--device", "cpu");
        assertEquals(0, r.rc(), r.all());
        Path text = CliFixtures.smallModel(tmp.resolve("text"));
        CliFixtures.Run refused = CliFixtures.run("generate", "--model_path", text.toString(), "--image", image.toString(),
                "--prompt", "What is it?", "--max_new_tokens", "2", "--device", "cpu");
        assertEquals(1, refused.rc(), refused.all());
        assertTrue(refused.err().contains("--image needs an image-text checkpoint"), refused.all());
    }

    /** {@code jtune plan} of an image-text checkpoint plans the whole model with an image in each sequence, and says so (ImagePlanTest: what it counts). */
    @Test
    void thePlanOfAnImageTextCheckpointCountsTheTowerAndAnImage() throws IOException {
        CliFixtures.Run r = CliFixtures.run("plan", "--model_path", checkpoint().toString(), "--max_seq_length", "64",
                "--per_device_train_batch_size", "1", "--max_memory", "16GiB");
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("image-text model: planned with the vision tower and projector, and one image in each sequence"), r.all());
    }

    /** Image settings on a text-only checkpoint, and a text model with nothing left to train, are refused with what to do. */
    @Test
    void whatTheModelCannotTrainIsRefusedWithWhatToDo() throws IOException {
        Path text = CliFixtures.smallModel(tmp.resolve("text"));
        CliFixtures.Run images = CliFixtures.run("--model_path", text.toString(), "--data_path", data(2).toString(),
                "--image_folder", tmp.resolve("images").toString(), "--output_dir", tmp.resolve("o2").toString(), "--max_steps", "1", "--device", "cpu");
        assertEquals(1, images.rc(), images.all());
        assertTrue(images.err().contains("text-only Gemma 3"), images.all());
        CliFixtures.Run towerLora = CliFixtures.run("--model_path", text.toString(), "--data_path", CliFixtures.data(tmp.resolve("v.jsonl"), 2, "").toString(),
                "--output_dir", tmp.resolve("o4").toString(), "--max_steps", "1", "--lora_enable", "--freeze_llm", "--vision_lora",
                "--freeze_vision_tower", "--device", "cpu");
        assertEquals(1, towerLora.rc(), towerLora.all());
        assertTrue(towerLora.err().contains("--vision_lora puts LoRA on the vision tower"), towerLora.all());
        CliFixtures.Run frozen = CliFixtures.run("--model_path", text.toString(), "--data_path", CliFixtures.data(tmp.resolve("t.jsonl"), 2, "").toString(),
                "--output_dir", tmp.resolve("o3").toString(), "--max_steps", "1", "--freeze_llm", "True", "--device", "cpu");
        assertEquals(1, frozen.rc(), frozen.all());
        assertTrue(frozen.err().contains("leaves nothing to train"), frozen.all());
    }

    /**
     * The fixture's image-text checkpoint with the real ids: vocabulary 262,208 (gemma-3-4b's), {@code <start_of_image>}
     * 255999, {@code <end_of_image>} 256000, {@code <image_soft_token>} 262144; its embedding random rows of that many.
     */
    /**
     * The train command on {@link #checkpoint()} with {@code records} drawn image records, 2 steps of 2 on the cpu,
     * writing to {@code out}, then {@code flags}.
     */
    private CliFixtures.Run train(Path out, int records, String... flags) throws IOException {
        List<String> a = new ArrayList<>(List.of("--model_path", checkpoint().toString(), "--data_path", data(records).toString(),
                "--image_folder", tmp.resolve("images").toString(), "--output_dir", out.toString(), "--max_steps", "2",
                "--per_device_train_batch_size", "2", "--device", "cpu"));
        a.addAll(List.of(flags));
        return CliFixtures.run(a.toArray(String[]::new));
    }

    /** jtune merge of the adapter in {@code adapter} into {@link #checkpoint()}'s model, to tmp/merged. */
    private CliFixtures.Run merge(Path adapter) {
        return CliFixtures.run("merge", "--model_path", tmp.resolve("mm-model").toString(), "--adapter_path", adapter.toString(),
                "--output_dir", tmp.resolve("merged").toString(), "--device", "cpu");
    }

    private Path checkpoint() throws IOException {
        Path fixture;
        try {
            fixture = Path.of(ImageCliTest.class.getResource("/gemma3-mm-tiny/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
        Path dir = Files.createDirectories(tmp.resolve("mm-model"));
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = (ObjectNode) json.readTree(fixture.resolve("config.json").toFile());
        ((ObjectNode) config.get("text_config")).put("vocab_size", 262_208);
        config.put("image_token_index", 262_144).put("boi_token_index", 255_999).put("eoi_token_index", 256_000);
        Files.writeString(dir.resolve("config.json"), json.writerWithDefaultPrettyPrinter().writeValueAsString(config));
        try (Scope s = Scope.open("checkpoint"); SafeTensorsFile file = SafeTensorsFile.open(fixture.resolve("model.safetensors"))) {
            SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
            for (String name : file.names()) {
                TensorInfo info = file.info(name);
                if (name.endsWith("embed_tokens.weight")) {
                    w.add(name, Tensor.normal(Shape.of(262_208, info.shape().dim(1)), DType.BF16, Device.CPU, 5, 0, 0.02));
                } else {
                    w.add(name, info.fileDType(), info.shape().toArray(), file.bytes(name));
                }
            }
            w.write(dir.resolve("model.safetensors"));
        }
        return dir;
    }

    /** n LLaVA records, each one drawn image and a question about it; the images under tmp/images. */
    private Path data(int n) throws IOException {
        Path images = Files.createDirectories(tmp.resolve("images"));
        ObjectMapper json = new ObjectMapper();
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            BufferedImage img = new BufferedImage(60, 40, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = img.createGraphics();
            g.setColor(i % 2 == 0 ? Color.RED : Color.BLUE);
            g.fillOval(5 + i, 5, 40, 28);
            g.dispose();
            ImageIO.write(img, "png", images.resolve("p" + i + ".png").toFile());
            lines.add(json.writeValueAsString(Map.of("id", "r" + i, "image", "p" + i + ".png", "conversations", List.of(
                    Map.of("from", "human", "value", "<image>\nWhat colour is the shape?"),
                    Map.of("from", "gpt", "value", i % 2 == 0 ? "Red." : "Blue.")))));
        }
        Path file = tmp.resolve("images.jsonl");
        Files.write(file, lines);
        return file;
    }
}
