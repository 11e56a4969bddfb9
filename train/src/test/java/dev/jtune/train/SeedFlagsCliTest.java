package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.loop.TrainerConfig;
import dev.jtune.train.loop.TrainerConfig.OptimizerStatePlacement;
import dev.jtune.train.loop.TrainerConfig.OptimizerStatePrecision;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The seed's optimizer flags on the command line with a tiny model (cpu, seconds): {@code --deepspeed} with each
 * fixture file and {@code --optim adamw_bnb_8bit}, parsed into the trainer's configuration, run where the trainer runs
 * them, refused where issue 12 says (parameter offload) and where the trainer is not wired yet (8-bit, paged and host
 * optimizer state: {@code TrainCommand}'s one refusal, until the engine's optimizers are wired in).
 */
class SeedFlagsCliTest {
    @TempDir
    Path tmp;
    private Path model;
    private Path data;

    @BeforeEach
    void setUp() throws IOException {
        model = CliFixtures.base(tmp.resolve("model"), CliFixtures.tiny(), DType.F32, 3);
        CliFixtures.tinyTokenizer(model);
        data = CliFixtures.data(tmp.resolve("d.jsonl"), 4, "");
    }

    private Path fixture(String name) throws IOException {
        try (InputStream in = SeedFlagsCliTest.class.getResourceAsStream("/deepspeed/" + name + ".json")) {
            assertTrue(in != null, "test resource deepspeed/" + name + ".json");
            return Files.write(tmp.resolve(name + ".json"), in.readAllBytes());
        }
    }

    /** A short cpu run's flags, then {@code more}. */
    private String[] args(String out, String... more) {
        List<String> l = new ArrayList<>(List.of("--model_path", model.toString(), "--data_path", data.toString(),
                "--output_dir", tmp.resolve(out).toString(), "--max_steps", "2", "--per_device_train_batch_size", "2",
                "--learning_rate", "1e-2", "--report_to", "none", "--save_strategy", "no", "--device", "cpu"));
        l.addAll(List.of(more));
        return l.toArray(String[]::new);
    }

    private TrainerConfig config(String... args) {
        return TrainCommand.config(TrainArgs.parse(args));
    }

    @Test
    void zero2RunsAsTheGpuResidentOptimizer() throws IOException {
        String ds = fixture("zero2").toString();
        TrainerConfig c = config(args("o", "--deepspeed", ds));
        assertEquals(OptimizerStatePrecision.FP32, c.optimizerStatePrecision());
        assertEquals(OptimizerStatePlacement.DEVICE, c.optimizerStatePlacement());
        CliFixtures.Run r = CliFixtures.run(args("o", "--deepspeed", ds));
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.err().contains("jtune: warning: --deepspeed (deepspeed config " + ds + "): ignored, with no meaning for jtune"
                + " on one GPU: fp16.loss_scale"), r.all());
        assertTrue(Files.exists(tmp.resolve("o").resolve("model.safetensors")), r.all());
    }

    @Test
    void zero3RunsAsTheGpuResidentOptimizer() throws IOException {
        String ds = fixture("zero3").toString();
        assertEquals(OptimizerStatePlacement.DEVICE, config(args("o", "--deepspeed", ds)).optimizerStatePlacement());
        CliFixtures.Run r = CliFixtures.run(args("o", "--deepspeed", ds));
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.err().contains("zero_optimization.stage3_max_live_parameters"), r.all());
        assertTrue(Files.exists(tmp.resolve("o").resolve("model.safetensors")), r.all());
    }

    @Test
    void zero2OffloadRunsTheHostOffloadedOptimizer() throws IOException {
        String ds = fixture("zero2_offload").toString();
        TrainerConfig c = config(args("o", "--deepspeed", ds));
        assertEquals(OptimizerStatePrecision.FP32, c.optimizerStatePrecision());
        assertEquals(OptimizerStatePlacement.HOST, c.optimizerStatePlacement());
        assertEquals(TrainerConfig.OptimizerStepTiming.IMMEDIATE, c.optimizerStepTiming());
        CliFixtures.Run r = CliFixtures.run(args("o", "--deepspeed", ds));
        assertEquals(0, r.rc(), r.all());
        assertTrue(Files.exists(tmp.resolve("o").resolve("model.safetensors")), r.all());
    }

    @Test
    void pagedAdamW32bitAndTheDelayedHostStepRun() {
        for (String[] more : List.of(new String[] {"--optim", "paged_adamw_32bit"},
                new String[] {"--offload_optimizer", "cpu", "--delayed_optimizer_step"})) {
            String out = "o-" + more[1];
            CliFixtures.Run r = CliFixtures.run(args(out, more));
            assertEquals(0, r.rc(), String.join(" ", more) + ": " + r.all());
            assertTrue(Files.exists(tmp.resolve(out).resolve("model.safetensors")), r.all());
        }
    }

    @Test
    void zero3OffloadRunsWithParameterOffload() throws IOException {
        String ds = fixture("zero3_offload").toString();
        CliFixtures.Run r = CliFixtures.run(args("o", "--deepspeed", ds, "--lr_scheduler_type", "linear"));
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.all().contains("layer weights offloaded (two layers on the device)"), r.all());
        assertTrue(Files.exists(tmp.resolve("o").resolve("model.safetensors")), r.all());
    }

    /** The seed's own command: ZeRO-3 ultra offload (optimizer and weights on the host) with 8-bit AdamW, whose state then lives on the host. */
    @Test
    void zero3UltraOffloadWithTheSeedsFlagsRunsWith8BitStateOnTheHost() throws IOException {
        String ds = fixture("zero3_ultra_offload").toString();
        CliFixtures.Run r = CliFixtures.run(args("o", "--deepspeed", ds, "--optim", "adamw_bnb_8bit", "--bf16", "True",
                "--per_device_train_batch_size", "1", "--gradient_checkpointing", "True"));
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.all().contains("layer weights offloaded (two layers on the device)"), r.all());
        assertTrue(Files.exists(tmp.resolve("o").resolve("model.safetensors")), r.all());
    }

    @Test
    void adamwBnb8bitAndPagedAdamW8bitRun() {
        TrainerConfig c = config(args("o", "--optim", "adamw_bnb_8bit"));
        assertEquals(OptimizerStatePrecision.BLOCKWISE_8BIT, c.optimizerStatePrecision());
        assertEquals(OptimizerStatePlacement.DEVICE, c.optimizerStatePlacement());
        for (String optim : List.of("adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit")) {
            CliFixtures.Run r = CliFixtures.run(args("o-" + optim, "--optim", optim));
            assertEquals(0, r.rc(), optim + ": " + r.all());
            assertTrue(Files.exists(tmp.resolve("o-" + optim).resolve("model.safetensors")), r.all());
        }
    }

    @Test
    void theMemoryReportGoesInTheSummaryAndInMetricsJsonl() throws IOException {
        String[] a = args("o", "--offload_optimizer", "cpu");
        a[java.util.Arrays.asList(a).indexOf("none")] = "jsonl";
        CliFixtures.Run r = CliFixtures.run(a);
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("optimizer (host)"), "the summary's table: " + r.all());
        String last = Files.readAllLines(tmp.resolve("o").resolve("metrics.jsonl")).getLast();
        com.fasterxml.jackson.databind.JsonNode memory = new com.fasterxml.jackson.databind.ObjectMapper().readTree(last).get("memory_bytes");
        assertTrue(memory.get("optimizer_host").asLong() > 0, last);
        assertEquals(0, memory.get("optimizer_device").asLong(), "host-offloaded: no optimizer state on the device: " + last);
        assertTrue(memory.get("weights_device").asLong() > 0, last);
        assertTrue(memory.has("quantized_weights") && memory.has("adapters") && memory.has("activations") && memory.has("workspace")
                && memory.has("pinned_host"), last);
    }

    @Test
    void eightBitStateOnTheHostRuns() throws IOException {
        CliFixtures.Run r = CliFixtures.run(args("o", "--optim", "adamw_bnb_8bit", "--offload_optimizer", "cpu"));
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("optimizer (host)"), "the state is on the host: " + r.all());
        assertTrue(Files.exists(tmp.resolve("o").resolve("model.safetensors")), r.all());
    }
}
