package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.loop.TrainerTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The train command end to end as a user runs it: flags in, an HF-format output directory out; bad data named. */
class MainTrainTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... args) {
        return Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    /** A random small Gemma 3 with the real vocabulary, written as an HF checkpoint (config.json + model.safetensors). */
    private static Path smallCheckpoint(Path dir) {
        try (Scope s = Scope.open("export")) {
            LoraMerge.export(Gemma3Model.random(DefaultModel.config(262_144, false), Device.CPU, DType.F32, 3), dir, LoraMerge.DEFAULT_SHARD_BYTES);
        }
        return dir;
    }

    private static Path tinyCheckpoint(Path dir) throws IOException {
        try (Scope s = Scope.open("export")) {
            LoraMerge.export(Gemma3Model.random(TrainerTest.tinyConfig(), Device.CPU, DType.F32, 3), dir, LoraMerge.DEFAULT_SHARD_BYTES);
        }
        return dir;
    }

    @Test
    void aTokenizerThatDoesNotFitTheModelIsAnError(@TempDir Path tmp) throws IOException {
        Path model = tinyCheckpoint(tmp.resolve("model")); // vocabulary 512: the bundled tokenizer's ids do not fit
        int rc = run("--model_path", model.toString(), "--data_path", data(tmp.resolve("d.jsonl"), 4, null).toString(),
                "--output_dir", tmp.resolve("o").toString(), "--max_steps", "1", "--device", "cpu");
        assertEquals(1, rc);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("vocabulary of 512"), err.toString(StandardCharsets.UTF_8));
    }

    private static Path data(Path file, int n, String bad) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            lines.add(json.writeValueAsString(java.util.Map.of("id", "c" + i, "conversations", List.of(
                    java.util.Map.of("from", "human", "value", "What is " + i + " plus " + i + "?"),
                    java.util.Map.of("from", "gpt", "value", "It is " + (2 * i) + ".")))));
        }
        if (bad != null) {
            lines.add(3, bad);
        }
        Files.write(file, lines);
        return file;
    }

    @Test
    void qloraFlagsTrainAndWriteAPeftAdapter(@TempDir Path tmp) throws IOException {
        Path model = smallCheckpoint(tmp.resolve("model"));
        Path output = tmp.resolve("out");
        int rc = run("--model_path", model.toString(), "--data_path", data(tmp.resolve("d.jsonl"), 12, null).toString(),
                "--output_dir", output.toString(), "--max_steps", "3", "--per_device_train_batch_size", "4",
                "--lora_enable", "True", "--freeze_llm", "True", "--lora_rank", "4", "--lora_alpha", "8",
                "--bits", "4", "--learning_rate", "1e-3", "--logging_steps", "1", "--save_steps", "2", "--device", "cpu");
        assertEquals(0, rc, err.toString(StandardCharsets.UTF_8) + out.toString(StandardCharsets.UTF_8));
        assertTrue(Files.exists(output.resolve(PeftAdapter.CONFIG_FILE)), "adapter_config.json");
        assertTrue(Files.exists(output.resolve(PeftAdapter.WEIGHTS_FILE)), "adapter_model.safetensors");
        assertTrue(Files.exists(output.resolve("checkpoint-2").resolve("optimizer.safetensors")), "checkpoint-2");
        assertTrue(Files.exists(output.resolve("report.html")) && Files.exists(output.resolve("metrics.jsonl")));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("base in NF4"), out.toString(StandardCharsets.UTF_8));
    }

    @Test
    void reportToNoneWritesNoMetricsFilesAndGenerateStreamsText(@TempDir Path tmp) throws IOException {
        Path model = smallCheckpoint(tmp.resolve("model"));
        Path output = tmp.resolve("out");
        int rc = run("--model_path", model.toString(), "--data_path", data(tmp.resolve("d.jsonl"), 4, null).toString(),
                "--output_dir", output.toString(), "--max_steps", "1", "--report_to", "none", "--device", "cpu");
        assertEquals(0, rc, err.toString(StandardCharsets.UTF_8));
        assertTrue(Files.exists(output.resolve("model.safetensors")), "full fine-tuning writes the model");
        assertTrue(!Files.exists(output.resolve("metrics.jsonl")) && !Files.exists(output.resolve("report.html")), "--report_to none");
        out.reset();
        int g = run("generate", "--model_path", output.toString(), "--prompt", "Hello", "--max_new_tokens", "4", "--device", "cpu", "--chat");
        assertEquals(0, g, err.toString(StandardCharsets.UTF_8));
        assertTrue(!out.toString(StandardCharsets.UTF_8).isBlank(), "generated text is printed");
        assertEquals(1, run("--model_path", model.toString(), "--data_path", tmp.resolve("d.jsonl").toString(), "--output_dir",
                tmp.resolve("o2").toString(), "--optim", "sgd", "--device", "cpu"), "sgd is refused, not ignored");
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--optim sgd"), err.toString(StandardCharsets.UTF_8));
    }

    /**
     * The README's newcomer path: the embedded default run (twice: the second does nothing), then generate with its
     * adapter, merge it into the base it wrote, and generate with the merged model: the same greedy text.
     */
    @Test
    void theNewcomersPathTrainsThenGeneratesAndMerges(@TempDir Path tmp) throws IOException {
        Path output = tmp.resolve("jtune-output");
        TrainCommand.runDefault(output, new PrintStream(out, true, StandardCharsets.UTF_8));
        for (String f : List.of(PeftAdapter.CONFIG_FILE, PeftAdapter.WEIGHTS_FILE, "metrics.jsonl", "report.html", "checkpoint-60",
                "base_model/config.json", "base_model/model.safetensors")) {
            assertTrue(Files.exists(output.resolve(f)), f + " in " + output);
        }
        List<String> lines = Files.readAllLines(output.resolve("metrics.jsonl"));
        ObjectMapper json = new ObjectMapper();
        double first = json.readTree(lines.get(0)).get("loss").asDouble();
        double last = json.readTree(lines.get(lines.size() - 1)).get("loss").asDouble();
        assertTrue(last < 0.6 * first, "the loss falls: " + first + " -> " + last);

        out.reset();
        TrainCommand.runDefault(output, new PrintStream(out, true, StandardCharsets.UTF_8));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("already holds the embedded default's finished run"), out.toString(StandardCharsets.UTF_8));
        assertEquals(lines, Files.readAllLines(output.resolve("metrics.jsonl")), "run twice, nothing is added");

        String prompt = "What is the capital of France?";
        out.reset();
        assertEquals(0, run("generate", "--adapter_path", output.toString(), "--prompt", prompt, "--chat", "--max_new_tokens", "12"),
                err.toString(StandardCharsets.UTF_8));
        String withAdapter = out.toString(StandardCharsets.UTF_8);
        Path merged = tmp.resolve("merged");
        assertEquals(0, run("merge", "--model_path", output.resolve("base_model").toString(), "--adapter_path", output.toString(),
                "--output_dir", merged.toString()), err.toString(StandardCharsets.UTF_8));
        assertTrue(Files.exists(merged.resolve("compact_vocabulary.json")), "the compact vocabulary travels with the merged model");
        out.reset();
        assertEquals(0, run("generate", "--model_path", merged.toString(), "--prompt", prompt, "--chat", "--max_new_tokens", "12"),
                err.toString(StandardCharsets.UTF_8));
        String fromMerged = out.toString(StandardCharsets.UTF_8);
        assertTrue(!withAdapter.isBlank(), "generated text");
        assertEquals(withAdapter, fromMerged, "the merged model generates what base + adapter generate");
        System.out.println("newcomer path: generate with the adapter and with the merged model both gave: " + withAdapter.strip());
    }

    @Test
    void aBadDatasetLineIsNamedByFileRecordAndReason(@TempDir Path tmp) throws IOException {
        Path model = tinyCheckpoint(tmp.resolve("model"));
        Path file = data(tmp.resolve("bad.jsonl"), 6, "{\"id\": \"x\", \"conversations\": [{\"from\": \"robot\", \"value\": \"hi\"}]}");
        int rc = run("--model_path", model.toString(), "--data_path", file.toString(), "--output_dir", tmp.resolve("o").toString(),
                "--max_steps", "1", "--device", "cpu");
        String msg = err.toString(StandardCharsets.UTF_8);
        assertEquals(1, rc, msg);
        assertTrue(msg.contains("bad.jsonl") && msg.contains("record 3") && msg.contains("robot"), msg);
    }
}
