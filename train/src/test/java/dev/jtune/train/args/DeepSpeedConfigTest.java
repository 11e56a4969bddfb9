package dev.jtune.train.args;

import dev.jtune.train.loop.TrainerConfig;
import dev.jtune.train.loop.TrainerConfig.OptimizerStatePlacement;
import dev.jtune.train.loop.TrainerConfig.OptimizerStatePrecision;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --deepspeed: the fixture configs mapped onto the flags, "auto", conflicts naming both sides, refusals, the one warning. */
class DeepSpeedConfigTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    /** A DeepSpeed fixture (test resources deepspeed/NAME.json) copied into the temporary directory. */
    private Path fixture(String name) {
        try (InputStream in = DeepSpeedConfigTest.class.getResourceAsStream("/deepspeed/" + name + ".json")) {
            if (in == null) {
                throw new IllegalStateException("test resource deepspeed/" + name + ".json is missing");
            }
            Path file = tmp.resolve(name + ".json");
            Files.write(file, in.readAllBytes());
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A fixture with one piece of its text replaced (the fixtures themselves stay as users pass them). */
    private Path edited(String name, String from, String to) throws IOException {
        Path file = fixture(name);
        String text = Files.readString(file);
        assertTrue(text.contains(from), from);
        return Files.writeString(tmp.resolve(name + "-edited.json"), text.replace(from, to));
    }

    private static List<String> deepSpeedWarnings(CommandLine.Train t) {
        return t.warnings().stream().filter(w -> w.startsWith("--deepspeed")).toList();
    }

    /** The problems, each expected to contain its fragments, and no others. */
    private static void problems(ArgsException e, List<List<String>> expected) {
        assertEquals(expected.size(), e.problems().size(), e.getMessage());
        for (List<String> fragments : expected) {
            assertTrue(e.problems().stream().anyMatch(p -> fragments.stream().allMatch(p::contains)),
                    fragments + " in\n" + e.getMessage());
        }
    }

    // ---- the fixture files ----

    @Test
    void zero2TakesEveryAutoFromTheFlagsAndListsItsMultiGpuKeysInOneWarning() {
        Path ds = fixture("zero2");
        CommandLine.Train t = fx.train("--deepspeed", ds.toString(), "--per_device_train_batch_size", "4",
                "--gradient_accumulation_steps", "2", "--max_grad_norm", "0.5", "--bf16");
        TrainArgs a = t.args();
        assertEquals(4, a.perDeviceTrainBatchSize());
        assertEquals(2, a.gradientAccumulationSteps());
        assertEquals(0.5, a.maxGradNorm());
        assertTrue(a.bf16());
        assertEquals(OffloadOptimizer.NONE, a.offloadOptimizer());
        assertEquals(OptimizerStatePlacement.DEVICE, a.optimizerStatePlacement());
        assertEquals(ds.toString(), a.deepspeed());

        DeepSpeedConfig c = DeepSpeedConfig.read(ds.toString());
        assertEquals(2, c.zeroStage());
        assertEquals(OffloadOptimizer.NONE, c.offloadOptimizer());
        assertEquals(List.of("fp16.loss_scale", "fp16.loss_scale_window", "fp16.initial_scale_power", "fp16.hysteresis",
                "fp16.min_loss_scale", "zero_optimization.overlap_comm", "zero_optimization.contiguous_gradients",
                "zero_optimization.sub_group_size", "zero_optimization.reduce_bucket_size"), c.ignoredKeys());
        assertEquals(List.of(), c.unknownKeys());
        List<String> w = deepSpeedWarnings(t);
        assertEquals(1, w.size(), t.warnings().toString());
        assertEquals("--deepspeed (deepspeed config " + ds + "): ignored, with no meaning for jtune on one GPU: "
                + String.join(", ", c.ignoredKeys()), w.getFirst());
    }

    @Test
    void zero2OffloadIsTheHostOffloadedOptimizer() {
        Path ds = fixture("zero2_offload");
        CommandLine.Train t = fx.train("--deepspeed", ds.toString());
        TrainArgs a = t.args();
        assertEquals(OffloadOptimizer.CPU, a.offloadOptimizer());
        assertEquals(OptimizerStatePlacement.HOST, a.optimizerStatePlacement());
        assertEquals(OptimizerStatePrecision.FP32, a.optim().statePrecision());
        String w = deepSpeedWarnings(t).getFirst();
        for (String key : List.of("zero_optimization.allgather_partitions", "zero_optimization.allgather_bucket_size",
                "zero_optimization.overlap_comm", "zero_optimization.reduce_scatter", "zero_optimization.reduce_bucket_size",
                "zero_optimization.contiguous_gradients")) {
            assertTrue(w.contains(key), key + " in " + w);
        }
        assertFalse(w.contains("pin_memory"), "pin_memory true is what jtune does: " + w);

        // with an 8-bit --optim the host keeps 8-bit state
        TrainArgs eight = fx.parse("--deepspeed", ds.toString(), "--optim", "adamw_bnb_8bit");
        assertEquals(OptimizerStatePrecision.BLOCKWISE_8BIT, eight.optim().statePrecision());
        assertEquals(OptimizerStatePlacement.HOST, eight.optimizerStatePlacement());

        problems(fx.error("--deepspeed", ds.toString(), "--offload_optimizer", "none"), List.of(List.of(
                "zero_optimization.offload_optimizer.device cpu (deepspeed config " + ds + ") contradicts --offload_optimizer none (command line)")));
        problems(fx.error("--deepspeed", ds.toString(), "--optim", "paged_adamw_8bit"), List.of(List.of(
                "--optim paged_adamw_8bit keeps the state in host memory the GPU maps", "the --deepspeed config's offload_optimizer",
                "choose one")));
    }

    @Test
    void zero3MapsLikeZero2WithItsPartitioningKeysIgnored() {
        Path ds = fixture("zero3");
        CommandLine.Train t = fx.train("--deepspeed", ds.toString());
        assertEquals(OptimizerStatePlacement.DEVICE, t.args().optimizerStatePlacement());
        assertEquals(3, DeepSpeedConfig.read(ds.toString()).zeroStage());
        String w = deepSpeedWarnings(t).getFirst();
        for (String key : List.of("zero_optimization.stage3_prefetch_bucket_size", "zero_optimization.stage3_param_persistence_threshold",
                "zero_optimization.stage3_max_live_parameters", "zero_optimization.stage3_max_reuse_distance",
                "zero_optimization.stage3_gather_16bit_weights_on_model_save", "zero_optimization.sub_group_size")) {
            assertTrue(w.contains(key), key + " in " + w);
        }
    }

    @Test
    void zero3OffloadIsParameterAndOptimizerOffload() throws IOException {
        Path ds = fixture("zero3_offload");
        // offload_param.device cpu is --offload_param cpu; it turns on --gradient_checkpointing, which was not given
        CommandLine.Train t = fx.train("--deepspeed", ds.toString(), "--lr_scheduler_type", "linear");
        assertEquals(OffloadParam.CPU, t.args().offloadParam());
        assertEquals(TrainerConfig.WeightPlacement.HOST, t.args().weightPlacement());
        assertTrue(t.args().gradientCheckpointing(), "turned on for the recomputation parameter offload needs");
        assertEquals(LrSchedulerType.LINEAR, t.args().lrSchedulerType());
        assertEquals(Optim.ADAMW_TORCH, t.args().optim());
        assertEquals(OptimizerStatePlacement.HOST, t.args().optimizerStatePlacement());
        List<String> w = deepSpeedWarnings(t);
        assertEquals(2, w.size(), w.toString());
        assertTrue(w.get(0).contains("steps_per_print") && w.get(0).contains("wall_clock_breakdown")
                && w.get(0).contains("zero_optimization.offload_param.pin_memory")
                && w.get(0).contains("zero_optimization.offload_param.device cpu turns on --gradient_checkpointing, which was not given"), w.get(0));
        assertTrue(w.get(1).contains("scheduler WarmupDecayLR runs as --lr_scheduler_type linear")
                && w.get(1).contains("DeepSpeed would warm up over 2 steps (its minimum) where jtune warms up over 0"), w.get(1));
        // --lr_scheduler_type given differently: a conflict
        problems(fx.error("--deepspeed", ds.toString(), "--lr_scheduler_type", "cosine"), List.of(List.of(
                "scheduler.type WarmupDecayLR (deepspeed config " + ds + "), which is --lr_scheduler_type linear,"
                        + " contradicts --lr_scheduler_type cosine (command line)")));
        // gradient checkpointing given off: parameter offload cannot run without recomputation
        problems(fx.error("--deepspeed", ds.toString(), "--lr_scheduler_type", "linear", "--gradient_checkpointing", "false"), List.of(List.of(
                "--offload_param cpu (or the --deepspeed config's offload_param) needs --gradient_checkpointing")));
        // --offload_param given differently: a conflict
        problems(fx.error("--deepspeed", ds.toString(), "--lr_scheduler_type", "linear", "--offload_param", "none"), List.of(List.of(
                "zero_optimization.offload_param.device cpu (deepspeed config " + ds + ") contradicts --offload_param none (command line)")));
        // without offload_param the rest maps alone
        Path withoutParams = edited("zero3_offload", "\"offload_param\": {\"device\": \"cpu\"", "\"offload_param\": {\"device\": \"none\"");
        CommandLine.Train n = fx.train("--deepspeed", withoutParams.toString(), "--lr_scheduler_type", "linear");
        assertEquals(OffloadParam.NONE, n.args().offloadParam());
        assertFalse(n.args().gradientCheckpointing());
        // parameter offload is ZeRO-3's
        Path stage2 = edited("zero3_offload", "\"stage\": 3", "\"stage\": 2");
        problems(fx.error("--deepspeed", stage2.toString(), "--lr_scheduler_type", "linear"), List.of(List.of(
                "zero_optimization.offload_param (deepspeed config " + stage2 + ") needs zero_optimization.stage 3, got 2")));
    }

    @Test
    void zero3UltraOffloadWithTheSeedsFlagsMapsBothOffloads() throws IOException {
        Path ds = fixture("zero3_ultra_offload");
        CommandLine.Train seed = fx.train("--deepspeed", ds.toString(), "--bf16", "True", "--per_device_train_batch_size", "1",
                "--gradient_checkpointing", "True");
        assertEquals(OffloadParam.CPU, seed.args().offloadParam());
        assertEquals(OptimizerStatePlacement.HOST, seed.args().optimizerStatePlacement());
        // with the flags' defaults its non-auto values are conflicts, as in HF's Trainer
        problems(fx.error("--deepspeed", ds.toString()), List.of(
                List.of("bf16.enabled true (deepspeed config " + ds + ") contradicts --bf16 False (its default; HF's Trainer also"
                        + " holds DeepSpeed values to the defaults)"),
                List.of("train_micro_batch_size_per_gpu 1 (deepspeed config " + ds + ") contradicts --per_device_train_batch_size 8"
                        + " (its default")));

        Path withoutParams = edited("zero3_ultra_offload", "\"offload_param\": {\"device\": \"cpu\"", "\"offload_param\": {\"device\": \"none\"");
        CommandLine.Train t = fx.train("--deepspeed", withoutParams.toString(), "--bf16", "True", "--per_device_train_batch_size", "1");
        assertEquals(OptimizerStatePlacement.HOST, t.args().optimizerStatePlacement());
        List<String> w = deepSpeedWarnings(t);
        assertEquals(1, w.size(), w.toString());
        for (String part : List.of("zero_optimization.offload_optimizer.buffer_count", "zero_optimization.offload_optimizer.fast_init",
                "zero_optimization.offload_param.buffer_size", "zero_optimization.offload_param.max_in_cpu",
                "zero_optimization.round_robin_gradients", "activation_checkpointing.partition_activations",
                "activation_checkpointing.contiguous_memory_optimization", ", aio",
                "activation_checkpointing.cpu_checkpointing true is ignored too: HF's Trainer never applies DeepSpeed's activation"
                        + " checkpointing")) {
            assertTrue(w.getFirst().contains(part), part + " in " + w.getFirst());
        }
    }

    @Test
    void autoTakesTheFlagsValueAndEqualValuesAgree() {
        TrainArgs a = fx.parse("--deepspeed", """
                {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": "auto", "train_batch_size": 8,
                 "gradient_clipping": 1.0, "bf16": {"enabled": "auto"}, "fp16": {"enabled": false},
                 "optimizer": {"type": "AdamW", "params": {"lr": 2e-4, "betas": "auto", "eps": "auto", "weight_decay": 0.1}}}""",
                "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--learning_rate", "2e-4",
                "--weight_decay", "0.1", "--adam_beta2", "0.95");
        assertEquals(4, a.perDeviceTrainBatchSize());
        assertEquals(2, a.gradientAccumulationSteps());
        assertEquals(2e-4, a.learningRate());
        assertEquals(0.95, a.adamBeta2());
        assertEquals(Optim.ADAMW_TORCH, a.optim());
    }

    @Test
    void aConflictNamesBothValuesAndBothSources() {
        Path config = Fixture.write(tmp.resolve("args.json"), "{\"gradient_accumulation_steps\": 5}");
        ArgsException e = fx.error("--deepspeed", """
                        {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 4, "gradient_clipping": 0.5,
                         "bf16": {"enabled": false}}""",
                "--per_device_train_batch_size", "3", "--config", config.toString(), "--bf16");
        problems(e, List.of(
                List.of("train_micro_batch_size_per_gpu 2 (inline deepspeed config) contradicts --per_device_train_batch_size 3 (command line)"),
                List.of("gradient_accumulation_steps 4 (inline deepspeed config) contradicts --gradient_accumulation_steps 5 (config file "
                        + config + ")"),
                List.of("gradient_clipping 0.5 (inline deepspeed config) contradicts --max_grad_norm 1.0 (its default"),
                List.of("bf16.enabled false (inline deepspeed config) contradicts --bf16 True (command line)")));
        for (String p : e.problems()) {
            assertTrue(p.endsWith("make them agree or write \"auto\" in the DeepSpeed config"), p);
        }
    }

    @Test
    void trainBatchSizeIsMicroTimesAccumulationTimesOneGpu() {
        String ds = "{\"train_batch_size\": 16, \"gradient_clipping\": \"auto\"}";
        assertEquals(8, fx.parse("--deepspeed", ds, "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2")
                .perDeviceTrainBatchSize());
        problems(fx.error("--deepspeed", ds, "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2"),
                List.of(List.of("train_batch_size 16 (inline deepspeed config) contradicts 8 = --per_device_train_batch_size 4"
                        + " (command line) x --gradient_accumulation_steps 2 (command line) x world size 1")));
    }

    @Test
    void absentClippingIsDeepSpeedsNoClipping() {
        problems(fx.error("--deepspeed", "{\"zero_optimization\": {\"stage\": 2}}"), List.of(List.of(
                "gradient_clipping absent, which DeepSpeed reads as 0 (no clipping) (inline deepspeed config) contradicts"
                        + " --max_grad_norm 1.0 (its default")));
        assertEquals(0.0, fx.parse("--deepspeed", "{\"zero_optimization\": {\"stage\": 2}}", "--max_grad_norm", "0").maxGradNorm());
    }

    @Test
    void theOptimizerBlockIsDeepSpeedsFp32AdamW() {
        String block = "{\"gradient_clipping\": \"auto\", \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": \"auto\","
                + " \"betas\": \"auto\", \"eps\": \"auto\", \"weight_decay\": \"auto\"}}}";
        assertEquals(Optim.ADAMW_TORCH_FUSED, fx.parse("--deepspeed", block, "--optim", "adamw_torch_fused").optim());
        assertEquals(Optim.ADAMW_TORCH, fx.parse("--deepspeed", block).optim());
        problems(fx.error("--deepspeed", block, "--optim", "adamw_bnb_8bit"), List.of(List.of(
                "optimizer.type AdamW (inline deepspeed config), DeepSpeed's fp32 AdamW, contradicts --optim adamw_bnb_8bit"
                        + " (command line): remove the optimizer block")));

        // absent parameters are DeepSpeed's defaults, held to the flags
        String bare = "{\"gradient_clipping\": \"auto\", \"optimizer\": {\"type\": \"Adam\"}}";
        problems(fx.error("--deepspeed", bare), List.of(List.of("optimizer.params.lr absent, which DeepSpeed reads as 0.001"
                + " (inline deepspeed config) contradicts --learning_rate 5e-05 (its default")));
        assertEquals(1e-3, fx.parse("--deepspeed", bare, "--learning_rate", "1e-3").learningRate());

        problems(fx.error("--deepspeed", block.replace("\"betas\": \"auto\"", "\"betas\": [0.9, 0.95]")), List.of(List.of(
                "optimizer.params.betas [0.9, 0.95] (inline deepspeed config) contradicts --adam_beta1 0.9 (its default",
                "and --adam_beta2 0.999 (its default")));
        problems(fx.error("--deepspeed", block.replace("AdamW", "Lamb")), List.of(List.of("optimizer.type \"Lamb\"",
                "is refused", "DeepSpeed's other optimizers")));
        problems(fx.error("--deepspeed", block.replace("AdamW", "Adam").replace("\"lr\"", "\"adam_w_mode\": false, \"lr\"")),
                List.of(List.of("adam_w_mode false", "L2 regularisation")));
        problems(fx.error("--deepspeed", block.replace("\"lr\"", "\"amsgrad\": true, \"lr\"")), List.of(List.of("AMSGrad is not built")));
    }

    @Test
    void schedulersMapToHfsSchedulesOrAreRefused() {
        String warmupLr = "{\"gradient_clipping\": \"auto\", \"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_min_lr\": 0,"
                + " \"warmup_max_lr\": \"auto\", \"warmup_num_steps\": 10, \"warmup_type\": \"linear\"}}}";
        TrainArgs a = fx.parse("--deepspeed", warmupLr, "--warmup_steps", "10");
        assertEquals(LrSchedulerType.CONSTANT_WITH_WARMUP, a.lrSchedulerType());
        problems(fx.error("--deepspeed", warmupLr), List.of(List.of("scheduler.params.warmup_num_steps 10 (inline deepspeed config)"
                + " contradicts --warmup_steps 0 (its default")));
        problems(fx.error("--deepspeed", warmupLr.replace(", \"warmup_type\": \"linear\"", ""), "--warmup_steps", "10"),
                List.of(List.of("scheduler.params.warmup_type absent, which DeepSpeed reads as log,", "is refused",
                        "write \"warmup_type\": \"linear\"")));
        problems(fx.error("--deepspeed", warmupLr.replace("\"warmup_min_lr\": 0", "\"warmup_min_lr\": 1e-6"), "--warmup_steps", "10"),
                List.of(List.of("scheduler.params.warmup_min_lr 1e-06 (inline deepspeed config) is refused: jtune warms up from 0")));
        problems(fx.error("--deepspeed", warmupLr.replace("\"warmup_max_lr\": \"auto\"", "\"warmup_max_lr\": 3e-4"), "--warmup_steps", "10"),
                List.of(List.of("scheduler.params.warmup_max_lr 0.0003 (inline deepspeed config) contradicts --learning_rate 5e-05")));
        problems(fx.error("--deepspeed", warmupLr.replace("WarmupLR", "OneCycle")), List.of(List.of("scheduler.type OneCycle",
                "has no jtune equivalent")));

        String cosine = "{\"gradient_clipping\": \"auto\", \"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\":"
                + " \"auto\", \"warmup_num_steps\": \"auto\", \"warmup_type\": \"linear\", \"cos_min_ratio\": 0}}}";
        CommandLine.Train t = fx.train("--deepspeed", cosine, "--warmup_steps", "5");
        assertEquals(LrSchedulerType.COSINE, t.args().lrSchedulerType());
        assertTrue(deepSpeedWarnings(t).isEmpty(), t.warnings().toString());
        problems(fx.error("--deepspeed", cosine.replace("\"cos_min_ratio\": 0", "\"cos_min_ratio\": 0.1")),
                List.of(List.of("scheduler.params.cos_min_ratio 0.1 (inline deepspeed config) is refused: jtune's cosine ends at 0")));
        String note = deepSpeedWarnings(fx.train("--deepspeed", cosine.replace(", \"cos_min_ratio\": 0", ""), "--warmup_steps", "5")).getFirst();
        assertTrue(note.contains("DeepSpeed's cosine would end at cos_min_ratio 1e-4 of the learning rate"), note);

        String decay = "{\"gradient_clipping\": \"auto\", \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 100,"
                + " \"warmup_num_steps\": \"auto\", \"warmup_max_lr\": \"auto\"}}}";
        assertEquals(LrSchedulerType.LINEAR, fx.parse("--deepspeed", decay, "--max_steps", "100").lrSchedulerType());
        problems(fx.error("--deepspeed", decay, "--max_steps", "50"), List.of(List.of(
                "scheduler.params.total_num_steps 100 (inline deepspeed config) contradicts --max_steps 50 (command line)")));
        problems(fx.error("--deepspeed", decay.replace("\"total_num_steps\": 100,", "")), List.of(List.of(
                "scheduler.params.total_num_steps (inline deepspeed config) is missing")));
    }

    @Test
    void stepCountsAreCheckedOnceTheRunKnowsThem() {
        String decay = "{\"gradient_clipping\": \"auto\", \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 100,"
                + " \"warmup_num_steps\": 5, \"warmup_type\": \"linear\"}}}";
        // with epochs and a warmup ratio the step counts depend on the data: nothing to check while parsing
        TrainArgs a = fx.parse("--deepspeed", decay, "--warmup_ratio", "0.05", "--learning_rate", "1e-3");
        DeepSpeedConfig c = DeepSpeedConfig.read(a.deepspeed());
        assertEquals(List.of(), c.stepConflicts(100, a.warmupStepsFor(100)));
        List<String> off = c.stepConflicts(120, a.warmupStepsFor(120));
        assertEquals(2, off.size(), off.toString());
        assertTrue(off.get(0).startsWith("scheduler.params.total_num_steps 100 (inline deepspeed config) contradicts this run's 120"
                + " optimizer steps"), off.get(0));
        assertTrue(off.get(1).startsWith("scheduler.params.warmup_num_steps 5 (inline deepspeed config) contradicts this run's warmup"
                + " of 6 steps"), off.get(1));
    }

    // ---- refusals ----

    @Test
    void whatJtuneCannotDoIsRefusedWithTheReason() {
        problems(fx.error("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2,"
                + " \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"/nvme\"}}}"), List.of(List.of(
                "zero_optimization.offload_optimizer.device nvme (inline deepspeed config) is refused: NVMe offload is not built")));
        problems(fx.error("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 3,"
                + " \"offload_param\": {\"device\": \"nvme\"}}}"), List.of(List.of("offload_param.device nvme", "NVMe offload is not built")));
        problems(fx.error("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"offload_optimizer\": {\"device\": \"cpu\"}}}"),
                List.of(List.of("needs zero_optimization.stage 1, 2 or 3, got 0 (absent: DeepSpeed's default)")));
        problems(fx.error("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 4}}"),
                List.of(List.of("zero_optimization.stage 4 (inline deepspeed config) must be 0, 1, 2 or 3")));
        problems(fx.error("--deepspeed", "{\"gradient_clipping\": \"auto\", \"fp16\": {\"enabled\": true}}"),
                List.of(List.of("fp16.enabled true (inline deepspeed config) asks for fp16, which jtune refuses", "Gemma 3 overflows fp16")));
        problems(fx.error("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2,"
                + " \"offload_optimizer\": {\"device\": \"cpu\", \"ratio\": 0.5}}}"), List.of(List.of("offloads part of the optimizer")));
        // DeepSpeed's first spelling of offload
        assertEquals(OffloadOptimizer.CPU, fx.parse("--deepspeed",
                "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2, \"cpu_offload\": true}}").offloadOptimizer());
    }

    @Test
    void unknownKeysAreWarnedInTheSameLine() {
        CommandLine.Train t = fx.train("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2,"
                + " \"overlap_comm\": true, \"my_knob\": 1}, \"fancy\": {}}");
        List<String> w = deepSpeedWarnings(t);
        assertEquals(List.of("--deepspeed (inline deepspeed config): ignored, with no meaning for jtune on one GPU:"
                + " zero_optimization.overlap_comm; not DeepSpeed keys jtune knows, ignored: zero_optimization.my_knob, fancy"), w);
    }

    // ---- how the value is given ----

    @Test
    void inlineAndBase64JsonAreReadAsHfReadsThem() throws IOException {
        // TrainingArguments converts a command line's "true" and digit strings inside inline JSON
        TrainArgs a = fx.parse("--deepspeed", "{\"gradient_clipping\": \"auto\", \"bf16\": {\"enabled\": \"true\"},"
                + " \"train_micro_batch_size_per_gpu\": \"2\"}", "--bf16", "--per_device_train_batch_size", "2");
        assertTrue(a.bf16());
        String json = Files.readString(fixture("zero2_offload"), StandardCharsets.UTF_8);
        String encoded = Base64.getUrlEncoder().encodeToString(json.getBytes(StandardCharsets.UTF_8));
        DeepSpeedConfig c = DeepSpeedConfig.read(encoded);
        assertEquals("base64 deepspeed config", c.description());
        assertEquals(OffloadOptimizer.CPU, c.offloadOptimizer());
        assertEquals(OffloadOptimizer.CPU, fx.parse("--deepspeed", encoded).offloadOptimizer());
    }

    @Test
    void savedArgumentsKeepTheConfigsEffectWithoutReadingIt() throws IOException {
        Path ds = fixture("zero3_offload");
        Path edited = edited("zero3_offload", "\"offload_param\": {\"device\": \"cpu\"", "\"offload_param\": {\"device\": \"none\"");
        TrainArgs a = fx.parse("--deepspeed", edited.toString());
        String json = a.toJson();
        assertTrue(json.contains("\"offload_optimizer\" : \"cpu\"") && json.contains("\"deepspeed\" : \"" + edited + "\""), json);
        Files.delete(edited);
        Files.delete(ds);
        assertEquals(a, TrainArgs.fromJson(json)); // saved arguments may be read where the config is not
    }
}
