package dev.jtune.train.args;

import dev.jtune.gemma.model.Gemma3Model;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ParsingTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    @Test
    void defaultsAreHfs() {
        TrainArgs d = TrainArgs.defaults();
        assertEquals(8, d.perDeviceTrainBatchSize());
        assertEquals(8, d.perDeviceEvalBatchSize());
        assertEquals(1, d.gradientAccumulationSteps());
        assertEquals(3.0, d.numTrainEpochs());
        assertEquals(-1, d.maxSteps());
        assertEquals(2048, d.maxSeqLength());
        assertEquals(5e-5, d.learningRate());
        assertEquals(0.0, d.weightDecay());
        assertEquals(0.9, d.adamBeta1());
        assertEquals(0.999, d.adamBeta2());
        assertEquals(1e-8, d.adamEpsilon());
        assertEquals(0.0, d.warmupRatio());
        assertEquals(0, d.warmupSteps());
        assertEquals(LrSchedulerType.LINEAR, d.lrSchedulerType());
        assertEquals(1.0, d.maxGradNorm());
        assertFalse(d.bf16());
        assertEquals(16, d.bits());
        assertTrue(d.doubleQuant());
        assertEquals(QuantType.NF4, d.quantType());
        assertFalse(d.loraEnable());
        assertEquals(64, d.loraRank());
        assertEquals(16, d.loraAlpha());
        assertEquals(0.05, d.loraDropout());
        assertEquals(List.of("lm_head", "embed_tokens"), d.loraNamespanExclude());
        assertEquals(-1, d.numLoraModules());
        assertFalse(d.freezeLlm());
        assertFalse(d.gradientCheckpointing());
        assertEquals(Optim.ADAMW_TORCH, d.optim());
        assertEquals(500, d.loggingSteps());
        assertEquals(IntervalStrategy.STEPS, d.saveStrategy());
        assertEquals(500, d.saveSteps());
        assertNull(d.saveTotalLimit());
        assertEquals(42, d.seed());
        assertFalse(d.lazyPreprocess());
        assertEquals(0, d.dataloaderNumWorkers());
        assertEquals(Resume.AUTO, d.resumeFromCheckpoint());
        assertFalse(d.overwriteOutputDir());
        assertEquals(List.of(ReportTarget.JSONL, ReportTarget.HTML), d.reportTo()); // jtune writes both unless told otherwise
        assertEquals(IntervalStrategy.NO, d.evalStrategy());
        assertNull(d.evalSteps());
        assertEquals(0.0, d.evalRatio());
        assertFalse(d.skipBadRecords());
        assertEquals("auto", d.device());
        assertNull(d.preset());
        assertEquals(Path.of("trainer_output"), d.outputDir());
        assertNull(d.modelId());
        assertNull(d.dataPath());
    }

    @Test
    void theMinimalCommandLineGivesTheDefaultsForEverythingElse() {
        TrainArgs a = fx.parse();
        TrainArgs d = TrainArgs.defaults();
        for (Flag f : Flag.implemented()) {
            if (f != Flag.MODEL_PATH && f != Flag.DATA_PATH && f != Flag.OUTPUT_DIR) {
                assertEquals(d.get(f), a.get(f), f.cli());
            }
        }
    }

    /** A valid non-default value per implemented flag, and what else it needs to make sense. */
    private Map<Flag, List<String>> samples() {
        Path other = fx.dir("other-model");
        Fixture.write(other.resolve("config.json"), "{}");
        Path checkpoint = fx.dir("ckpt/checkpoint-7");
        Path adapter = Fixture.write(fx.dir("adapter").resolve("adapter_config.json"), "{}").getParent();
        Path config = Fixture.write(tmp.resolve("empty-config.json"), "{}");
        Path evalData = Fixture.write(tmp.resolve("eval.json"), "[]");
        Path otherData = Fixture.write(tmp.resolve("data2.jsonl"), "");
        Map<Flag, List<String>> m = new EnumMap<>(Flag.class);
        m.put(Flag.MODEL_ID, List.of("google/gemma-3-270m"));
        m.put(Flag.MODEL_PATH, List.of(other.toString()));
        m.put(Flag.CACHE_DIR, List.of(tmp.resolve("cache").toString()));
        m.put(Flag.DATA_PATH, List.of(otherData.toString()));
        m.put(Flag.EVAL_DATA_PATH, List.of(evalData.toString()));
        m.put(Flag.EVAL_RATIO, List.of("0.1"));
        m.put(Flag.MAX_SEQ_LENGTH, List.of("4096"));
        m.put(Flag.PACKING, List.of("true"));
        m.put(Flag.GROUP_BY_LENGTH, List.of("false"));
        m.put(Flag.LAZY_PREPROCESS, List.of("true"));
        m.put(Flag.SKIP_BAD_RECORDS, List.of("True"));
        m.put(Flag.DATALOADER_NUM_WORKERS, List.of("4"));
        m.put(Flag.IMAGE_FOLDER, List.of(fx.dir("images").toString()));
        m.put(Flag.OUTPUT_DIR, List.of(tmp.resolve("elsewhere").toString()));
        m.put(Flag.PER_DEVICE_TRAIN_BATCH_SIZE, List.of("2"));
        m.put(Flag.PER_DEVICE_EVAL_BATCH_SIZE, List.of("3"));
        m.put(Flag.GRADIENT_ACCUMULATION_STEPS, List.of("16"));
        m.put(Flag.NUM_TRAIN_EPOCHS, List.of("1.5"));
        m.put(Flag.MAX_STEPS, List.of("100"));
        m.put(Flag.FREEZE_LLM, List.of("true", "--lora_enable"));
        m.put(Flag.FREEZE_VISION_TOWER, List.of("true"));
        m.put(Flag.FREEZE_PROJECTOR, List.of("True"));
        m.put(Flag.GRADIENT_CHECKPOINTING, List.of("true"));
        m.put(Flag.CHECKPOINTING_GRANULARITY, List.of("half"));
        m.put(Flag.KEEP_ATTENTION, List.of("none"));
        m.put(Flag.OFFLOAD_ACTIVATIONS, List.of("true", "--gradient_checkpointing"));
        m.put(Flag.GRADIENT_CHECKPOINTING_KWARGS, List.of("{\"offload\": true}", "--gradient_checkpointing"));
        m.put(Flag.TILED_MLP, List.of("true"));
        m.put(Flag.TILED_MLP_NUM_SHARDS, List.of("4", "--tiled_mlp"));
        m.put(Flag.BF16, List.of("true"));
        m.put(Flag.SEED, List.of("7"));
        m.put(Flag.MAX_NONFINITE_STEPS, List.of("5"));
        m.put(Flag.EVAL_STRATEGY, List.of("steps", "--eval_ratio", "0.05"));
        m.put(Flag.EVAL_STEPS, List.of("50"));
        m.put(Flag.OPTIM, List.of("adamw_torch_fused"));
        m.put(Flag.LEARNING_RATE, List.of("2e-4"));
        m.put(Flag.WEIGHT_DECAY, List.of("0.1"));
        m.put(Flag.ADAM_BETA1, List.of("0.8"));
        m.put(Flag.ADAM_BETA2, List.of("0.95"));
        m.put(Flag.ADAM_EPSILON, List.of("1e-6"));
        m.put(Flag.MAX_GRAD_NORM, List.of("0.5"));
        m.put(Flag.LR_SCHEDULER_TYPE, List.of("cosine"));
        m.put(Flag.WARMUP_RATIO, List.of("0.03"));
        m.put(Flag.WARMUP_STEPS, List.of("10"));
        m.put(Flag.OFFLOAD_OPTIMIZER, List.of("cpu"));
        m.put(Flag.OFFLOAD_PARAM, List.of("cpu", "--gradient_checkpointing", "--offload_optimizer", "cpu"));
        m.put(Flag.DELAYED_OPTIMIZER_STEP, List.of("true", "--offload_optimizer", "cpu"));
        m.put(Flag.VISION_LORA, List.of("true", "--lora_enable", "--freeze_llm", "--freeze_vision_tower"));
        m.put(Flag.VISION_LR, List.of("2e-6"));
        m.put(Flag.PROJECTOR_LR, List.of("1e-5"));
        m.put(Flag.LORA_ENABLE, List.of("true", "--freeze_llm"));
        m.put(Flag.LORA_RANK, List.of("8"));
        m.put(Flag.LORA_ALPHA, List.of("32"));
        m.put(Flag.LORA_DROPOUT, List.of("0.1"));
        m.put(Flag.LORA_NAMESPAN_EXCLUDE, List.of("['lm_head']"));
        m.put(Flag.NUM_LORA_MODULES, List.of("4"));
        m.put(Flag.BITS, List.of("4", "--lora_enable", "--freeze_llm"));
        m.put(Flag.DOUBLE_QUANT, List.of("false"));
        m.put(Flag.QUANT_TYPE, List.of("NF4")); // the only value: checks case only
        m.put(Flag.LORA_WEIGHT_PATH, List.of(adapter.toString(), "--lora_enable", "--freeze_llm"));
        m.put(Flag.SAVE_STRATEGY, List.of("epoch"));
        m.put(Flag.SAVE_STEPS, List.of("100"));
        m.put(Flag.SAVE_TOTAL_LIMIT, List.of("2"));
        m.put(Flag.RESUME_FROM_CHECKPOINT, List.of(checkpoint.toString()));
        m.put(Flag.SAVE_ONLY_MODEL, List.of("true"));
        m.put(Flag.OVERWRITE_OUTPUT_DIR, List.of("true"));
        m.put(Flag.LOGGING_STEPS, List.of("1"));
        m.put(Flag.REPORT_TO, List.of("jsonl"));
        m.put(Flag.DEVICE, List.of("cuda:1"));
        m.put(Flag.MAX_MEMORY, List.of("16GiB"));
        m.put(Flag.PRESET, List.of("ultra_memory_optimized"));
        m.put(Flag.CONFIG, List.of(config.toString()));
        m.put(Flag.DEEPSPEED, List.of(Fixture.write(tmp.resolve("ds.json"), "{\"gradient_clipping\": \"auto\"}").toString()));
        m.put(Flag.NPROC_PER_NODE, List.of("4"));
        m.put(Flag.NNODES, List.of("2", "--master_addr", "10.0.0.1"));
        m.put(Flag.NODE_RANK, List.of("1", "--nnodes", "2", "--master_addr", "10.0.0.1"));
        m.put(Flag.MASTER_ADDR, List.of("10.0.0.1"));
        m.put(Flag.MASTER_PORT, List.of("29600"));
        m.put(Flag.DDP_TIMEOUT, List.of("60"));
        m.put(Flag.DDP_BUCKET_CAP_MB, List.of("50"));
        return m;
    }

    @Test
    void everyImplementedFlagParsesInBothSyntaxes() {
        Map<Flag, List<String>> samples = samples();
        assertEquals(EnumSet.copyOf(Flag.implemented()), samples.keySet(), "a sample value for every implemented flag");
        for (Map.Entry<Flag, List<String>> e : samples.entrySet()) {
            Flag f = e.getKey();
            String value = e.getValue().getFirst();
            List<String> extra = e.getValue().subList(1, e.getValue().size());
            Object expected = f.parse(value);
            if (f != Flag.QUANT_TYPE) {
                assertNotEquals(f.defaultValue(), expected, f.cli() + ": the sample should not be the default");
            }
            List<String> spaced = new ArrayList<>(extra);
            spaced.addAll(List.of(f.cli(), value));
            List<String> joined = new ArrayList<>(extra);
            joined.add(f.cli() + "=" + value);
            for (List<String> args : List.of(spaced, joined)) {
                TrainArgs a = fx.parse(args.toArray(String[]::new));
                if (f == Flag.MODEL_ID) {
                    assertEquals(value, a.modelId()); // the model path given wins: no cache lookup
                } else {
                    assertEquals(expected, a.get(f), f.cli() + " " + args);
                }
            }
        }
    }

    @Test
    void booleansTakeHfsForms() {
        assertTrue(fx.parse("--bf16").bf16());
        assertTrue(fx.parse("--bf16", "True").bf16());
        assertTrue(fx.parse("--bf16=true").bf16());
        assertTrue(fx.parse("--bf16", "yes").bf16());
        assertTrue(fx.parse("--bf16=1").bf16());
        assertFalse(fx.parse("--bf16", "False").bf16());
        assertFalse(fx.parse("--bf16=false").bf16());
        assertFalse(fx.parse("--bf16", "no").bf16());
        assertFalse(fx.parse("--bf16", "0").bf16());
        // a bare switch followed by another flag
        TrainArgs a = fx.parse("--bf16", "--gradient_checkpointing", "--seed", "3");
        assertTrue(a.bf16());
        assertTrue(a.gradientCheckpointing());
        assertEquals(3, a.seed());
        // HfArgumentParser's --no_X for booleans that default to true
        assertFalse(fx.parse("--no_double_quant").doubleQuant());
        ArgsException e = fx.error("--bf16=maybe");
        assertTrue(e.getMessage().contains("--bf16 maybe is not a boolean"), e.getMessage());
    }

    @Test
    void aliasesAndDashes() {
        assertEquals(4096, fx.parse("--model_max_length", "4096").maxSeqLength());
        assertEquals(4096, fx.parse("--model_max_length=4096").maxSeqLength());
        assertEquals(IntervalStrategy.EPOCH, fx.parse("--evaluation_strategy", "epoch", "--eval_ratio", "0.1").evalStrategy());
        assertEquals(1e-4, fx.parse("--learning-rate", "1e-4").learningRate());
        // the last one given wins, as with argparse
        assertEquals(3, fx.parse("--seed", "1", "--seed", "3").seed());
        assertEquals(1024, fx.parse("--max_seq_length", "512", "--model_max_length", "1024").maxSeqLength());
    }

    @Test
    void choicesAreCaseInsensitiveAndNormalized() {
        assertEquals(LrSchedulerType.CONSTANT_WITH_WARMUP, fx.parse("--lr_scheduler_type", "Constant_With_Warmup").lrSchedulerType());
        assertEquals(Optim.SGD, fx.parse("--optim", "sgd").optim());
        assertTrue(fx.parse("--optim", "adamw_hf").optim().isAdamW());
        assertEquals("cuda", fx.parse("--device", "CUDA").device());
        assertEquals(List.of(ReportTarget.JSONL, ReportTarget.HTML), fx.parse("--report_to", "all").reportTo());
        assertEquals(List.of(ReportTarget.JSONL, ReportTarget.HTML), fx.parse("--report_to", "html,jsonl").reportTo());
        assertEquals(List.of(), fx.parse("--report_to", "none").reportTo());
    }

    @Test
    void loraNamespanExcludeTakesPythonListsAndCommas() {
        List<String> both = List.of("lm_head", "embed_tokens");
        assertEquals(both, fx.parse("--lora_namespan_exclude", "['lm_head', 'embed_tokens']").loraNamespanExclude());
        assertEquals(both, fx.parse("--lora_namespan_exclude", "[\"lm_head\",\"embed_tokens\"]").loraNamespanExclude());
        assertEquals(both, fx.parse("--lora_namespan_exclude", "lm_head,embed_tokens").loraNamespanExclude());
        assertEquals(both, fx.parse("--lora_namespan_exclude", " lm_head , embed_tokens ").loraNamespanExclude());
        assertEquals(List.of("vision_tower"), fx.parse("--lora_namespan_exclude=['vision_tower']").loraNamespanExclude());
        assertEquals(List.of(), fx.parse("--lora_namespan_exclude", "[]").loraNamespanExclude());
        ArgsException e = fx.error("--lora_namespan_exclude", "['lm_head'");
        assertTrue(e.getMessage().contains("--lora_namespan_exclude") && e.getMessage().contains("unbalanced"), e.getMessage());
        e = fx.error("--lora_namespan_exclude", "lm head");
        assertTrue(e.getMessage().contains("'lm head'"), e.getMessage());
    }

    @Test
    void noneUnsetsOptionalNumbers() {
        assertEquals(3, fx.parse("--save_total_limit", "3").saveTotalLimit());
        assertNull(fx.parse("--save_total_limit", "None").saveTotalLimit());
        assertNull(fx.parse("--eval_steps", "none").evalSteps());
    }

    @Test
    void helpIsAnAnswerNotARun() {
        assertInstanceOf(CommandLine.Help.class, fx.raw("--help"));
        assertInstanceOf(CommandLine.Help.class, fx.raw("-h"));
        assertInstanceOf(CommandLine.Help.class, fx.raw("--learning_rate", "oops", "--help"));
        ArgsException e = org.junit.jupiter.api.Assertions.assertThrows(ArgsException.class, () -> TrainArgs.parse("--help"));
        assertTrue(e.getMessage().contains("--help"));
    }

    @Test
    void ignoredFlagsWarnAndEnvironmentNotesToo() {
        fx.env.put("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True");
        CommandLine.Train t = fx.train("--use_liger", "True", "--disable_flash_attn2", "True", "--tf32", "True",
                "--freeze_vision_tower", "--freeze_projector", "False", "--vision_lr", "2e-6", "--projector_lr", "1e-5",
                "--image_folder", "./", "--do_train");
        assertEquals(TrainArgs.defaults().learningRate(), t.args().learningRate());
        assertEquals(2e-6, t.args().visionLr());
        assertEquals(1e-5, t.args().projectorLr());
        Set<String> expected = Set.of("--use_liger", "--disable_flash_attn2", "--tf32", "--do_train", "PYTORCH_CUDA_ALLOC_CONF");
        for (String name : expected) {
            assertTrue(t.warnings().stream().anyMatch(w -> w.startsWith(name)), name + " in " + t.warnings());
        }
        assertTrue(t.warnings().stream().anyMatch(w -> w.contains("expandable segments")), t.warnings().toString());
    }

    @Test
    void theSeedsLoraScriptTranslatesOneToOne() {
        // scripts/finetune_lora.sh of the seed, less DeepSpeed and its 8-bit optimizer
        CommandLine.Train t = fx.train("--lora_enable", "True", "--vision_lora", "False", "--use_dora", "False",
                "--lora_rank", "64", "--lora_alpha", "64", "--lora_dropout", "0.05",
                "--lora_namespan_exclude", "['lm_head', 'embed_tokens']", "--num_lora_modules", "-1",
                "--use_liger", "True", "--disable_flash_attn2", "True", "--freeze_projector", "False",
                "--freeze_vision_tower", "False", "--freeze_llm", "True", "--bf16", "True", "--fp16", "False",
                "--num_train_epochs", "1", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1",
                "--learning_rate", "1e-4", "--projector_lr", "1e-5", "--vision_lr", "2e-6", "--weight_decay", "0.1",
                "--warmup_ratio", "0.03", "--adam_beta2", "0.95", "--lr_scheduler_type", "cosine", "--logging_steps", "1",
                "--tf32", "False", "--gradient_checkpointing", "True", "--report_to", "none", "--lazy_preprocess", "True",
                "--dataloader_num_workers", "4", "--save_steps", "500", "--save_total_limit", "10",
                "--lora_bias", "none", "--lora_weight_path", "");
        TrainArgs a = t.args();
        assertTrue(a.loraEnable() && a.freezeLlm() && a.bf16() && a.gradientCheckpointing() && a.lazyPreprocess());
        assertEquals(64, a.loraAlpha());
        assertEquals(LrSchedulerType.COSINE, a.lrSchedulerType());
        assertEquals(0.95, a.adamBeta2());
        assertEquals(10, a.saveTotalLimit());
        assertEquals(1.0, a.numTrainEpochs());
        assertEquals(1e-5, a.projectorLr());
        assertEquals(2e-6, a.visionLr());
        assertEquals(null, TrainArgs.defaults().visionLr(), "none given: the main rate");
        ArgsException e = org.junit.jupiter.api.Assertions.assertThrows(ArgsException.class,
                () -> fx.train("--learning_rate", "0", "--vision_lr", "2e-6"));
        assertTrue(e.getMessage().contains("--vision_lr") && e.getMessage().contains("--learning_rate"), e.getMessage());
    }

    @Test
    void resumeFindsTheNewestCheckpointUnlessOverwriting() {
        Path out = fx.dir("out");
        assertTrue(fx.parse().checkpointToResume().isEmpty());
        fx.dir("out/checkpoint-9");
        fx.dir("out/checkpoint-10");
        fx.dir("out/checkpoint-x");
        assertEquals(out.resolve("checkpoint-10"), fx.parse().checkpointToResume().orElseThrow());
        assertEquals(out.resolve("checkpoint-10"), fx.parse("--resume_from_checkpoint", "latest").checkpointToResume().orElseThrow());
        assertEquals(out.resolve("checkpoint-10"), fx.parse("--resume_from_checkpoint", "True").checkpointToResume().orElseThrow());
        assertTrue(fx.parse("--overwrite_output_dir").checkpointToResume().isEmpty());
        assertTrue(fx.parse("--resume_from_checkpoint", "false").checkpointToResume().isEmpty());
        Path nine = out.resolve("checkpoint-9");
        assertEquals(nine, fx.parse("--resume_from_checkpoint", nine.toString()).checkpointToResume().orElseThrow());
    }

    @Test
    void derivedSettings() {
        TrainArgs a = fx.parse("--warmup_ratio", "0.03");
        assertEquals(30, a.warmupStepsFor(1000));
        assertEquals(4, a.warmupStepsFor(101)); // ceil, as HF
        assertEquals(7, fx.parse("--warmup_steps", "7").warmupStepsFor(1000));
        assertEquals(500, fx.parse().effectiveEvalSteps());
        assertEquals(20, fx.parse("--eval_steps", "20").effectiveEvalSteps());
    }

    @Test
    void pythonStyleFloats() {
        assertEquals("5e-05", ValueType.formatDouble(5e-5));
        assertEquals("1e-08", ValueType.formatDouble(1e-8));
        assertEquals("0.0001", ValueType.formatDouble(1e-4));
        assertEquals("0.0002", ValueType.formatDouble(2e-4));
        assertEquals("3.0", ValueType.formatDouble(3.0));
        assertEquals("0.999", ValueType.formatDouble(0.999));
        assertEquals("1e+16", ValueType.formatDouble(1e16));
        assertEquals("-2.5e-07", ValueType.formatDouble(-2.5e-7));
        for (double d : new double[] {5e-5, 1e-8, 0.1 + 0.2, 1.0 / 3, 12345.678, 6.02e23, -1e-300}) {
            assertEquals(d, Double.parseDouble(ValueType.formatDouble(d)));
        }
    }

    @Test
    void checkpointingGranularityPicksWhatBackwardRecomputes() {
        assertEquals(Gemma3Model.Checkpointing.NONE, fx.parse("--checkpointing_granularity", "half").checkpointing());
        assertEquals(Gemma3Model.Checkpointing.LAYERS, fx.parse("--gradient_checkpointing").checkpointing());
        assertEquals(Gemma3Model.Checkpointing.HALVES, fx.parse("--gradient_checkpointing", "--checkpointing_granularity", "half").checkpointing());
    }
}
