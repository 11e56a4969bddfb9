package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.lora.Lora;
import dev.jtune.gemma.lora.LoraAdapter;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.loop.TrainerTest;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Small models, adapters and command runs for the command-line tests (cpu, seconds). */
final class CliFixtures {
    private CliFixtures() {
    }

    /** One in-process run of the command line. */
    record Run(int rc, String out, String err) {
        String all() {
            return "exit " + rc + "\nstdout:\n" + out + "\nstderr:\n" + err;
        }
    }

    static Run run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** The 6-layer tiny Gemma 3 (hidden 64, vocabulary 512), optionally with another hidden size or layer count. */
    static Gemma3Config tiny(int layers, int hidden) {
        try {
            String json = TrainerTest.tinyConfig().toHfJson()
                    .replaceAll("\"num_hidden_layers\" : \\d+", "\"num_hidden_layers\" : " + layers)
                    .replaceAll("\"hidden_size\" : \\d+", "\"hidden_size\" : " + hidden)
                    .replaceAll("(?s)\"layer_types\" : \\[[^]]*]", "\"layer_types\" : [" + "\"sliding_attention\", ".repeat(layers - 1) + "\"full_attention\"]");
            return Gemma3Config.parse(json, "test");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Gemma3Config tiny() {
        return tiny(6, 64);
    }

    /** A random model of {@code config} written as an HF checkpoint in {@code dtype}. */
    static Path base(Path dir, Gemma3Config config, DType dtype, long seed) {
        return base(dir, config, dtype, seed, 0.1);
    }

    /** As above, the embedding (also the LM head) N(0, embeddingStd). */
    static Path base(Path dir, Gemma3Config config, DType dtype, long seed, double embeddingStd) {
        try (Scope s = Scope.open("base")) {
            Gemma3Model m = Gemma3Model.random(config, Device.CPU, dtype, seed);
            // a trained-like embedding scale, so logits are not ~0 (with 0.02 greedy decoding would meet near-ties; with
            // 0.5 the tied head makes the model repeat its last input token)
            try (Autograd.GradMode off = Autograd.noGrad()) {
                Ops.copyInto(Tensor.normal(m.embedding().shape(), dtype, Device.CPU, seed + 1, 0, embeddingStd), m.embedding());
            }
            LoraMerge.export(m, dir, LoraMerge.DEFAULT_SHARD_BYTES);
        }
        return dir;
    }

    /**
     * A peft adapter (r 4, alpha 8, every linear module) for a model of {@code config}, with random B so that it
     * changes the model, recording {@code baseName} as base_model_name_or_path.
     */
    static Path adapter(Path dir, Gemma3Config config, long seed, String baseName) {
        try (Scope s = Scope.open("adapter"); Autograd.GradMode off = Autograd.noGrad()) {
            Gemma3Model m = Gemma3Model.random(config, Device.CPU, DType.F32, 1);
            LoraConfig lora = LoraConfig.of(4, 8);
            Map<String, LoraAdapter> adapters = Lora.attach(m, lora, DType.F32, seed);
            long k = seed * 1000;
            for (LoraAdapter a : adapters.values()) {
                Ops.copyInto(Tensor.normal(a.b().shape(), DType.F32, Device.CPU, k++, 0, 0.1), a.b());
            }
            PeftAdapter.save(dir, adapters, lora, baseName);
        }
        return dir;
    }

    /**
     * A tokenizer.json of 330 tokens that GemmaTokenizer accepts (Gemma 3's special tokens and "\\n", the 256 byte-fallback
     * tokens, single letters, digits and punctuation, no merges), so a model with a vocabulary of 512 can be trained
     * from the command line in a second instead of needing Gemma 3's 262,144 rows.
     */
    static void tinyTokenizer(Path modelDir) {
        ObjectMapper json = new ObjectMapper();
        // "\n" is an added (not special) token, as in Gemma 3: the chat template's model turns start right after one
        List<String> tokens = new ArrayList<>(List.of("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n"));
        int added = tokens.size();
        for (int b = 0; b < 256; b++) {
            tokens.add(String.format(java.util.Locale.ROOT, "<0x%02X>", b));
        }
        for (char c : "\u2581abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,?!".toCharArray()) {
            tokens.add(String.valueOf(c));
        }
        ObjectNode root = json.createObjectNode();
        ArrayNode addedTokens = root.putArray("added_tokens");
        for (int i = 0; i < added; i++) {
            addedTokens.addObject().put("id", i).put("content", tokens.get(i)).put("single_word", false).put("lstrip", false)
                    .put("rstrip", false).put("normalized", false).put("special", !tokens.get(i).equals("\n"));
        }
        root.putObject("normalizer").put("type", "Replace").put("content", "\u2581").putObject("pattern").put("String", " ");
        root.putObject("pre_tokenizer").put("type", "Split").put("behavior", "MergedWithPrevious").put("invert", false)
                .putObject("pattern").put("String", " ");
        root.putNull("post_processor");
        ObjectNode decoder = root.putObject("decoder").put("type", "Sequence");
        ArrayNode decoders = decoder.putArray("decoders");
        ObjectNode replace = decoders.addObject().put("type", "Replace").put("content", " ");
        replace.putObject("pattern").put("String", "\u2581");
        decoders.addObject().put("type", "ByteFallback");
        decoders.addObject().put("type", "Fuse");
        ObjectNode model = root.putObject("model").put("type", "BPE").put("unk_token", "<unk>").put("fuse_unk", false)
                .put("byte_fallback", true).put("ignore_merges", false);
        ObjectNode vocab = model.putObject("vocab");
        for (int i = 0; i < tokens.size(); i++) {
            vocab.put(tokens.get(i), i);
        }
        model.putArray("merges");
        try {
            json.writeValue(modelDir.resolve("tokenizer.json").toFile(), root);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes compact_vocabulary.json: compact id i -> {@code gemmaIds[i]}. */
    static void compactVocabulary(Path modelDir, int[] gemmaIds) {
        try {
            Files.writeString(modelDir.resolve(CompactVocabulary.FILE), new ObjectMapper().writeValueAsString(gemmaIds));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Logits [ids.length x vocab] of the model in {@code dir} (f32, cpu), with the adapter in {@code adapter} when not null. */
    static float[] logits(Path dir, Path adapter, int[] ids) {
        try (Scope s = Scope.open("logits"); Autograd.GradMode off = Autograd.noGrad()) {
            Gemma3Model m = Gemma3Model.load(dir, Device.CPU, DType.F32);
            if (adapter != null) {
                PeftAdapter.load(adapter, m, DType.F32);
            }
            Tensor t = Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU);
            return m.logits(m.hidden(t, Gemma3Model.Options.defaults(), null)).toFloatArray();
        }
    }

    /** max |a - b| / max |b|. */
    static double maxRelative(float[] a, float[] b) {
        double max = 0;
        double scale = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
            scale = Math.max(scale, Math.abs(b[i]));
        }
        return max / scale;
    }

    /** A random 2-layer Gemma 3 with the real vocabulary (the bundled tokenizer's ids fit), as an HF checkpoint. */
    static Path smallModel(Path dir) {
        var real = DefaultModel.config(262_144, false);
        String json = real.toHfJson().replaceAll("\"num_hidden_layers\" : \\d+", "\"num_hidden_layers\" : 2")
                .replaceAll("(?s)\"layer_types\" : \\[[^]]*]", "\"layer_types\" : [\"sliding_attention\", \"full_attention\"]");
        try (Scope s = Scope.open("export")) {
            LoraMerge.export(Gemma3Model.random(dev.jtune.gemma.config.Gemma3Config.parse(json, "test"), Device.CPU, DType.F32, 3), dir,
                    LoraMerge.DEFAULT_SHARD_BYTES);
        }
        return dir;
    }

    /** metrics.jsonl of an output directory, one JSON object a line. */
    static List<com.fasterxml.jackson.databind.JsonNode> metrics(Path out) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<com.fasterxml.jackson.databind.JsonNode> rows = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve("metrics.jsonl"))) {
            rows.add(json.readTree(line));
        }
        return rows;
    }

    /** n short conversations as JSON lines; {@code salt} changes their text (another dataset). */
    /**
     * {@code n} conversations whose answers run to about {@code tokens} tokens or more ("Again and again." repeated):
     * records a --max_seq_length of at most {@code tokens} cuts, so a run plans at that limit (the data's longest).
     */
    static Path longData(Path file, int n, int tokens) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            lines.add(json.writeValueAsString(Map.of("id", "c" + i, "conversations", List.of(
                    Map.of("from", "human", "value", "What is " + i + " plus " + i + "?"),
                    Map.of("from", "gpt", "value", "It is " + (2 * i) + ". " + "Again and again. ".repeat(tokens / 4 + 1))))));
        }
        Files.write(file, lines);
        return file;
    }

    static Path data(Path file, int n, String salt) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            lines.add(json.writeValueAsString(Map.of("id", "c" + i, "conversations", List.of(
                    Map.of("from", "human", "value", "What is " + i + " plus " + i + "?" + salt),
                    Map.of("from", "gpt", "value", "It is " + (2 * i) + ".")))));
        }
        Files.write(file, lines);
        return file;
    }
}
