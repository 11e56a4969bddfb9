package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.model.Gemma3Model;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Runs jtune's command line in-process, as a user would from a shell, and keeps what it printed. */
final class Cli {
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    final ByteArrayOutputStream err = new ByteArrayOutputStream();

    int run(String... args) {
        out.reset();
        err.reset();
        return Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    /** Both streams, for assertion messages. */
    String all() {
        return "stdout:\n" + out() + "\nstderr:\n" + err();
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
