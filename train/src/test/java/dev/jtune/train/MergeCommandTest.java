package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsModel;
import dev.jtune.train.CliFixtures.Run;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.jtune.train.CliFixtures.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code jtune merge}: what it writes, that it computes what base + adapter computed, and what it refuses. */
class MergeCommandTest {
    private static final int[] IDS = {2, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100};

    private static void assertWritten(Path dir, DType dtype) throws IOException {
        String name = dtype == DType.BF16 ? "bfloat16" : "float32";
        assertEquals(name, new ObjectMapper().readTree(dir.resolve("config.json").toFile()).path("dtype").asText(), "config.json's dtype");
        try (SafeTensorsModel files = SafeTensorsModel.open(dir)) {
            for (String n : files.names()) {
                assertEquals(dtype, files.info(n).dtype(), n);
            }
        }
        try (var list = Files.list(dir.getParent())) {
            assertTrue(list.noneMatch(p -> p.getFileName().toString().contains(".merging-")), "no partial directory is left");
        }
    }

    /** The trainer's QLoRA run (NF4 base) writes an adapter; merge folds it into the dense base the run started from. */
    @Test
    void anAdapterTrainedOnAnNf4BaseMergesIntoTheDenseBase(@TempDir Path tmp) throws IOException {
        Path base = CliFixtures.base(tmp.resolve("base"), CliFixtures.tiny(), DType.F32, 3);
        CliFixtures.tinyTokenizer(base); // the trainer and generate tokenize with it; merge copies it
        Path data = tmp.resolve("d.jsonl");
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            lines.add(new ObjectMapper().writeValueAsString(Map.of("conversations", List.of(Map.of("from", "human", "value", "What is " + i + "?"),
                    Map.of("from", "gpt", "value", "It is " + i + ".")))));
        }
        Files.write(data, lines);
        Path trained = tmp.resolve("trained");
        Run train = run("--model_path", base.toString(), "--data_path", data.toString(), "--output_dir", trained.toString(),
                "--bits", "4", "--lora_enable", "True", "--freeze_llm", "True", "--lora_rank", "4", "--lora_alpha", "8",
                "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--report_to", "none",
                "--save_strategy", "no", "--device", "cpu");
        assertEquals(0, train.rc(), train.all());
        assertTrue(train.out().contains("base in NF4"), train.all());
        Files.writeString(base.resolve("generation_config.json"), "{\"do_sample\": false}");
        Files.writeString(base.resolve("tokenizer_config.json"), "{}");
        Files.writeString(base.resolve("special_tokens_map.json"), "{}");

        Path merged = tmp.resolve("merged");
        Run m = run("merge", "--model_path", base.toString(), "--adapter_path", trained.toString(), "--output_dir", merged.toString(), "--device", "cpu");
        assertEquals(0, m.rc(), m.all());
        assertTrue(m.out().contains("wrote " + merged.toAbsolutePath()) && m.out().contains("float32"), m.all());
        assertWritten(merged, DType.F32);
        for (String f : List.of("generation_config.json", "tokenizer_config.json", "special_tokens_map.json")) {
            assertEquals(Files.readString(base.resolve(f)), Files.readString(merged.resolve(f)), f);
        }
        assertEquals(Files.readString(base.resolve("tokenizer.json")), Files.readString(merged.resolve("tokenizer.json")));
        assertFalse(Files.exists(merged.resolve("tokenizer.model")), "only files the base has are copied");

        float[] adapted = CliFixtures.logits(base, trained, IDS);
        float[] plain = CliFixtures.logits(base, null, IDS);
        float[] fromMerged = CliFixtures.logits(merged, null, IDS);
        assertTrue(CliFixtures.maxRelative(adapted, plain) > 1e-3, "the trained adapter changes the model: " + CliFixtures.maxRelative(adapted, plain));
        assertTrue(CliFixtures.maxRelative(fromMerged, adapted) < 1e-5, "merged = base + adapter: " + CliFixtures.maxRelative(fromMerged, adapted));

        // and generate with the adapter (its base from adapter_config.json) says what the merged model says
        Run withAdapter = run("generate", "--adapter_path", trained.toString(), "--prompt", "What is 7?", "--chat", "--max_new_tokens", "10", "--device", "cpu");
        Run fromMergedDir = run("generate", "--model_path", merged.toString(), "--prompt", "What is 7?", "--chat", "--max_new_tokens", "10", "--device", "cpu");
        assertEquals(0, withAdapter.rc(), withAdapter.all());
        assertEquals(0, fromMergedDir.rc(), fromMergedDir.all());
        assertTrue(withAdapter.out().length() > System.lineSeparator().length(), "tokens were generated: " + withAdapter.all());
        assertEquals(withAdapter.out(), fromMergedDir.out());
    }

    /** A bf16 base gives a bf16 checkpoint, bit for bit what merging in-process in bf16 gives; --model_path may come from the adapter. */
    @Test
    void aBf16BaseIsWrittenInBf16(@TempDir Path tmp) throws IOException {
        Path base = CliFixtures.base(tmp.resolve("base"), CliFixtures.tiny(), DType.BF16, 7);
        Path adapter = CliFixtures.adapter(tmp.resolve("adapter"), CliFixtures.tiny(), 3, base.toAbsolutePath().toString());
        Path merged = tmp.resolve("merged");
        Files.createDirectories(merged); // an existing empty directory is fine
        Run m = run("merge", "--adapter_path", adapter.toString(), "--output_dir", merged.toString(), "--device", "cpu");
        assertEquals(0, m.rc(), m.all());
        assertTrue(m.err().contains("base model " + base.toAbsolutePath()), m.all());
        assertWritten(merged, DType.BF16);
        try (Scope s = Scope.open("reference")) {
            Gemma3Model ref = Gemma3Model.load(base, Device.CPU, DType.BF16);
            LoraMerge.merge(ref, PeftAdapter.load(adapter, ref, DType.F32).adapters());
            Gemma3Model back = Gemma3Model.load(merged, Device.CPU, DType.BF16);
            for (String module : ref.linears().keySet()) {
                assertArrayEquals(ref.linear(module).weight().toFloatArray(), back.linear(module).weight().toFloatArray(), module);
            }
        }
        float[] adapted = CliFixtures.logits(base, adapter, IDS);
        assertTrue(CliFixtures.maxRelative(CliFixtures.logits(merged, null, IDS), adapted) < 3e-2, "merged in bf16 ~ base + adapter");
    }

    @Test
    void whatDoesNotFitIsRefusedWithWhatAndWhere(@TempDir Path tmp) throws IOException {
        Path base = CliFixtures.base(tmp.resolve("base"), CliFixtures.tiny(), DType.F32, 7);
        Path adapter = CliFixtures.adapter(tmp.resolve("adapter"), CliFixtures.tiny(), 3, "google/gemma-3-270m");
        Path out = tmp.resolve("out");

        // files missing
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        refused(1, run("merge", "--model_path", base.toString(), "--adapter_path", empty.toString(), "--output_dir", out.toString()),
                "no adapter_config.json in " + empty.toAbsolutePath());
        Path half = Files.createDirectories(tmp.resolve("half"));
        Files.copy(adapter.resolve(PeftAdapter.CONFIG_FILE), half.resolve(PeftAdapter.CONFIG_FILE));
        refused(1, run("merge", "--model_path", base.toString(), "--adapter_path", half.toString(), "--output_dir", out.toString()),
                "no adapter_model.safetensors in " + half.toAbsolutePath());
        refused(1, run("merge", "--model_path", base.toString(), "--adapter_path", tmp.resolve("nowhere").toString(), "--output_dir", out.toString()),
                tmp.resolve("nowhere").toAbsolutePath() + " is not a directory");
        refused(1, run("merge", "--model_path", empty.toString(), "--adapter_path", adapter.toString(), "--output_dir", out.toString()),
                "no config.json in " + empty.toAbsolutePath());
        refused(2, run("merge", "--adapter_path", adapter.toString(), "--output_dir", out.toString()),
                "--model_path is required: the adapter's base_model_name_or_path ('google/gemma-3-270m') is not a local model directory");
        refused(2, run("merge", "--model_path", base.toString(), "--output_dir", out.toString()), "--adapter_path is required");
        refused(2, run("merge", "--model_path", base.toString(), "--adapter_path", adapter.toString()), "--output_dir is required");

        // shapes, layers, target modules that do not fit
        Path wide = CliFixtures.adapter(tmp.resolve("wide"), CliFixtures.tiny(6, 128), 3, "x");
        refused(1, run("merge", "--model_path", base.toString(), "--adapter_path", wide.toString(), "--output_dir", out.toString()),
                "the adapter in " + wide.toAbsolutePath() + " does not fit the model in " + base.toAbsolutePath() + ": ", "shape differs");
        Path deep = CliFixtures.adapter(tmp.resolve("deep"), CliFixtures.tiny(8, 64), 3, "x");
        refused(1, run("merge", "--model_path", base.toString(), "--adapter_path", deep.toString(), "--output_dir", out.toString()),
                "does not fit", "model.layers.6.", "another model");
        Path renamed = CliFixtures.adapter(tmp.resolve("renamed"), CliFixtures.tiny(), 3, "x");
        Path cfg = renamed.resolve(PeftAdapter.CONFIG_FILE);
        Files.writeString(cfg, Files.readString(cfg).replace("\"q_proj\"", "\"query_key_value\""));
        refused(1, run("merge", "--model_path", base.toString(), "--adapter_path", renamed.toString(), "--output_dir", out.toString()),
                "does not fit", "target_modules [query_key_value]");

        // where the output may not go
        refused(2, run("merge", "--model_path", base.toString(), "--adapter_path", adapter.toString(), "--output_dir", base.toString()),
                "is --model_path " + base.toRealPath());
        refused(2, run("merge", "--model_path", base.toString(), "--adapter_path", adapter.toString(), "--output_dir", base.resolve("m/n").toString()),
                "is inside --model_path " + base.toRealPath());
        refused(2, run("merge", "--model_path", base.toString(), "--adapter_path", adapter.toString(), "--output_dir", adapter.toString()),
                "is --adapter_path " + adapter.toRealPath());
        refused(2, run("merge", "--model_path", base.toString(), "--adapter_path", adapter.toString(),
                "--output_dir", tmp.resolve("adapter/../adapter/merged").toString()), "is inside --adapter_path " + adapter.toRealPath());
        Path link = Files.createSymbolicLink(tmp.resolve("link"), base);
        refused(2, run("merge", "--model_path", base.toString(), "--adapter_path", adapter.toString(), "--output_dir", link.resolve("m").toString()),
                "is inside --model_path");
        Path full = Files.createDirectories(tmp.resolve("full"));
        Files.writeString(full.resolve("notes.txt"), "mine");
        refused(2, run("merge", "--model_path", base.toString(), "--adapter_path", adapter.toString(), "--output_dir", full.toString()),
                "--output_dir " + full.toRealPath() + " exists and is not empty (1 entry: notes.txt)");
        assertEquals("mine", Files.readString(full.resolve("notes.txt")));
        assertFalse(Files.exists(out), "nothing was written for a refused merge");
        assertFalse(Files.exists(base.resolve("m")) || Files.exists(adapter.resolve("merged")));
    }

    private static void refused(int code, Run r, String... expected) {
        assertEquals(code, r.rc(), r.all());
        String line = r.err().strip();
        assertEquals(1, line.lines().count(), "one line: " + r.all());
        assertTrue(line.startsWith("jtune"), r.all());
        for (String e : expected) {
            assertTrue(line.contains(e), "expected '" + e + "' in: " + line);
        }
        assertFalse(line.contains("\tat "), r.all());
    }
}
