package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.GemmaTokenizer;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.train.args.ArgsException;
import dev.jtune.train.args.DeepSpeedConfig;
import dev.jtune.train.args.Flag;
import dev.jtune.train.args.GivenFlags;
import dev.jtune.train.args.IntervalStrategy;
import dev.jtune.train.args.OffloadOptimizer;
import dev.jtune.train.args.OffloadParam;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.data.DataOptions;
import dev.jtune.train.data.DatasetBuilder;
import dev.jtune.train.data.Example;
import dev.jtune.train.data.TrainingData;
import dev.jtune.train.loop.Batcher;
import dev.jtune.train.loop.Batching;
import dev.jtune.train.loop.LrSchedule;
import dev.jtune.train.loop.OutputDirectory;
import dev.jtune.train.loop.RunException;
import dev.jtune.train.loop.RunIdentity;
import dev.jtune.train.loop.StepRecord;
import dev.jtune.train.loop.Trainable;
import dev.jtune.train.loop.Trainer;
import dev.jtune.train.loop.TrainerConfig;
import dev.jtune.train.report.Progress;
import dev.jtune.train.report.RunReport;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.time.Duration;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.dist.NcclCollectives;
import dev.jtune.train.dist.DistEnv;
import dev.jtune.train.dist.Rendezvous;
import java.util.Optional;
import java.util.Set;

/**
 * {@code jtune [flags]}: checks the output directory, loads the data, decides from the output directory's newest
 * checkpoint whether this is a fresh run, a resumed one or a finished one ({@link OutputDirectory}), then loads the
 * model and trains.
 */
final class TrainCommand {
    private TrainCommand() {
    }

    /**
     * A run of {@code asked}, whose settings in {@code given} the user set: the memory planner fills what was left
     * open (printing its plan before any weight is loaded, or refusing), and the run uses its choice.
     */
    static void run(TrainArgs asked, GivenFlags given, PrintStream out) {
        run(asked, given, DistEnv.SINGLE, out);
    }

    /**
     * {@link #run(TrainArgs, GivenFlags, PrintStream)} as rank {@code place} of a data-parallel world (a worker): it
     * trains on cuda:LOCAL_RANK, meets the other ranks (rendezvous, then NCCL) right before training, and only rank 0
     * writes the output directory.
     */
    static void run(TrainArgs asked, GivenFlags given, DistEnv place, PrintStream out) {
        refuseWhatTheTrainerDoesNotRunYet(asked, config(asked));
        Path modelDir = asked.modelPath();
        OutputDirectory.check(asked.outputDir(), modelDir);
        if (place.isDistributed() && asked.optimizerStatePlacement() == TrainerConfig.OptimizerStatePlacement.HOST
                && !sharding(asked, place.worldSize()).shardsState()) {
            throw new CommandException("rank " + place.rank() + " with --offload_optimizer cpu (or a --deepspeed config's offload_optimizer): "
                    + TrainerConfig.HOST_OPTIMIZER_NOT_WITH_DATA_PARALLEL);
        }
        Device device = place.isDistributed() ? workerDevice(asked.device(), place) : device(asked.device());
        capDeviceMemory(asked, device);
        DType dtype = device.kind() == Device.Kind.CUDA && asked.bf16() ? DType.BF16 : DType.F32;
        warnings(asked, device).forEach(w -> out.println("jtune: warning: " + w));
        dataParallelWarnings(asked, place).forEach(w -> out.println("jtune: warning: " + w));
        boolean bundledTokenizer = !Files.isRegularFile(modelDir.resolve("tokenizer.json"));
        GemmaTokenizer tokenizer = bundledTokenizer ? GemmaTokenizer.bundled() : GemmaTokenizer.load(modelDir.resolve("tokenizer.json"));
        Optional<Gemma3VisionConfig> vision = Gemma3VisionConfig.read(modelDir);
        refuseImageSettings(asked, vision.isPresent(), modelDir);
        vision.ifPresent(vc -> dev.jtune.gemma.vision.ImagePreprocessor.checkSettings(modelDir, vc));
        TrainingData data = TrainingData.load(asked, new ChatTemplate(tokenizer), vision.map(vc -> new DataOptions.ImageInput(
                asked.imageFolder() != null ? asked.imageFolder() : asked.dataPath().toAbsolutePath().getParent(), vc.mmTokensPerImage(),
                vc.boiToken())).orElse(null));
        out.println(data.summary());
        // the data's shape bounds every step: its most images in a record, its longest sequence (packed rows: the limit)
        int longest = asked.packing() ? asked.maxSeqLength() : data.train().stream().mapToInt(Example::length).max().orElse(asked.maxSeqLength());
        TrainArgs a = plan(asked, plannerGiven(given, place), device, new MemoryPlanner.Model(Gemma3Config.read(asked.modelPath()), vision,
                vision.isPresent() ? data.train().stream().mapToInt(e -> e.images().size()).max().orElse(0) : 0, longest, place.worldSize()), out);
        TrainerConfig config = config(a, place.worldSize());
        RunIdentity identity = identity(a, data.train(), device, dtype,
                bundledTokenizer ? "bundled Gemma 3 tokenizer" : RunIdentity.fileFingerprint(modelDir.resolve("tokenizer.json")));
        int rows = Batcher.rowCount(data.train(), config.batching());
        if (config.batching().packed()) {
            long tokens = data.train().stream().mapToLong(e -> Math.min(e.length(), a.maxSeqLength())).sum();
            out.printf(Locale.ROOT, "packing: %,d examples in %,d rows of up to %,d tokens (%.1f%% filled)%n", data.train().size(), rows,
                    a.maxSeqLength(), 100.0 * tokens / ((double) rows * a.maxSeqLength()));
        }
        long total = Trainer.totalSteps(config, rows);
        if (a.deepspeed() != null) { // its step counts can be checked only now, as HF's Trainer does in trainer_config_finalize
            List<String> conflicts = DeepSpeedConfig.read(a.deepspeed()).stepConflicts(total, a.warmupStepsFor(total));
            if (!conflicts.isEmpty()) {
                throw new ArgsException(conflicts);
            }
        }
        OutputDirectory.Plan plan = a.overwriteOutputDir() && a.resumeFromCheckpoint().mode() != dev.jtune.train.args.Resume.Mode.PATH
                ? new OutputDirectory.Plan.Fresh()
                : OutputDirectory.plan(a.outputDir(), start(a), a.resumeFromCheckpoint().path(), identity, total);
        if (plan instanceof OutputDirectory.Plan.Finished f) {
            out.println(f.message());
            return;
        }
        try (Scope run = Scope.open("run", MemoryCategory.WEIGHTS)) {
            // layer by layer: quantized as loaded, and with --offload_param moved to the host at once, so the device never
            // holds more than the embedding and one layer in 16 bits
            Nf4Scales scales = a.bits() == 4 ? (a.doubleQuant() ? Nf4Scales.DOUBLE_QUANTIZED : Nf4Scales.FP32) : null;
            Gemma3Model.Loading loading = new Gemma3Model.Loading(scales,
                    a.offloadParam() == OffloadParam.CPU ? Gemma3Model.Loading.Placement.HOST : Gemma3Model.Loading.Placement.DEVICE);
            // an image-text checkpoint: its language model quantized or offloaded as asked, the tower and projector dense
            Gemma3MultimodalModel multimodal = vision.isPresent() ? Gemma3MultimodalModel.load(modelDir, device, dtype, loading) : null;
            Gemma3Model model = multimodal != null ? multimodal.text() : Gemma3Model.load(modelDir, device, dtype, loading);
            requireVocabulary(data.train(), model.config().vocabSize(), tokenizer, modelDir);
            if (a.bits() == 4) {
                out.printf(Locale.ROOT, "base in NF4: %.1f MiB for %d linear weights%n", model.quantizedBytes() / 1048576.0, model.quantizedLinears().size());
            }
            String name = a.modelId() != null ? a.modelId() : modelDir.toString();
            Trainable trainable;
            if (multimodal != null) {
                trainable = a.loraEnable() ? Trainable.lora(multimodal, loraConfig(a), a.seed(), name, trainedParts(a), adaptedParts(a))
                        : Trainable.full(multimodal, trainedParts(a), name);
                out.println("image-text model: " + (a.loraEnable() ? "LoRA on the language model" + (a.visionLora() ? " and the vision tower" : "")
                        : "trained in full: " + trainedParts(a))
                        + (a.loraEnable() && !trainedParts(a).isEmpty() ? "; trained in full beside it: " + trainedParts(a) : "")
                        + "; frozen: " + frozenParts(a));
            } else {
                trainable = a.loraEnable() ? Trainable.lora(model, loraConfig(a), a.seed(), name) : Trainable.full(model, name);
            }
            if (a.loraWeightPath() != null) {
                trainable.initialiseFrom(a.loraWeightPath());
                out.println("LoRA starts from the adapter in " + a.loraWeightPath());
            }
            out.printf(Locale.ROOT, "training %,d parameters (%s) on %s in %s%n", trainable.parameterCount(),
                    trainable.isLora() ? "LoRA" : "full fine-tuning", device, dtype);
            describeGroupLearningRates(config, trainable, out);
            boolean writes = place.rank() == 0; // rank 0 alone writes the output directory
            if (a.overwriteOutputDir() && writes) {
                List<String> removed = OutputDirectory.clear(a.outputDir());
                if (!removed.isEmpty()) {
                    out.println("--overwrite_output_dir: removed the earlier run's " + String.join(", ", removed) + " from " + a.outputDir());
                }
            }
            OutputDirectory.create(a.outputDir());
            try (Collectives world = join(place, device, Duration.ofSeconds(a.ddpTimeout()), out);
                 Trainer trainer = Trainer.builder(config, trainable).train(data.train()).eval(data.eval()).outputDir(a.outputDir())
                         .progress(Progress.forOutput(out)).padId(tokenizer.padId()).world(world)
                         .info(new Trainer.RunInfo("jtune training report: " + name, identity, a.settings())).build()) {
                if (writes) {
                    a.writeJson(a.outputDir().resolve("jtune_args.json"));
                }
                finish(trainer.run(plan, Long.MAX_VALUE), trainer, writes ? a.outputDir() : null, out);
            }
        }
    }

    /**
     * Gemma3-Finetune's freeze rules where they need the model's kind: image records or --image_folder need an
     * image-text checkpoint; a text model with --freeze_llm and no LoRA trains nothing.
     */
    static void refuseImageSettings(TrainArgs a, boolean imageText, Path modelDir) {
        if (imageText) {
            return;
        }
        if (a.imageFolder() != null) {
            throw new CommandException(Flag.IMAGE_FOLDER.cli() + " names images, but " + modelDir + " is a text-only Gemma 3 (its config.json"
                    + " has no vision_config): train images with an image-text checkpoint (gemma-3-4b and larger)");
        }
        if (a.freezeLlm() && !a.loraEnable()) {
            throw new CommandException(Flag.FREEZE_LLM.cli() + " without " + Flag.LORA_ENABLE.cli() + " leaves nothing to train: "
                    + modelDir + " is a text-only Gemma 3 (no vision tower or projector)");
        }
        if (a.visionLora()) {
            throw new CommandException(Flag.VISION_LORA.cli() + " puts LoRA on the vision tower, but " + modelDir + " is a text-only Gemma 3"
                    + " (no vision tower): leave it out, or train an image-text checkpoint (gemma-3-4b and larger)");
        }
    }

    /** The parts of an image-text model LoRA adapts: the language model, and the vision tower with --vision_lora. */
    static Set<Trainable.Part> adaptedParts(TrainArgs a) {
        return a.visionLora() ? EnumSet.of(Trainable.Part.LANGUAGE_MODEL, Trainable.Part.VISION_TOWER) : EnumSet.of(Trainable.Part.LANGUAGE_MODEL);
    }

    /** The parts of an image-text model a full fine-tune trains: those its freeze flags leave. */
    static Set<Trainable.Part> trainedParts(TrainArgs a) {
        Set<Trainable.Part> parts = EnumSet.noneOf(Trainable.Part.class);
        if (!a.freezeVisionTower()) {
            parts.add(Trainable.Part.VISION_TOWER);
        }
        if (!a.freezeProjector()) {
            parts.add(Trainable.Part.PROJECTOR);
        }
        if (!a.freezeLlm()) {
            parts.add(Trainable.Part.LANGUAGE_MODEL);
        }
        return parts;
    }

    private static Set<Trainable.Part> frozenParts(TrainArgs a) {
        Set<Trainable.Part> frozen = EnumSet.allOf(Trainable.Part.class);
        frozen.removeAll(trainedParts(a));
        return frozen;
    }

    /**
     * The one place that refuses what the arguments accept but the trainer does not run yet: SGD. Remove each line as
     * the trainer learns to run it.
     */
    static void refuseWhatTheTrainerDoesNotRunYet(TrainArgs a, TrainerConfig c) {
        List<String> missing = notRunYet(a, c);
        if (!missing.isEmpty()) {
            throw new RunException("the arguments are valid, but the trainer does not run " + String.join(", ", missing)
                    + " yet; it runs AdamW with fp32 state on the device (--optim adamw_torch, --offload_optimizer none)");
        }
    }

    /** What of {@code a} the trainer does not run yet (empty: all of it); the planner considers only what it runs. */
    static List<String> notRunYet(TrainArgs a) {
        return notRunYet(a, config(a));
    }

    @SuppressWarnings("unused") // c: what the next refusal will read, as the 8-bit host state's did
    private static List<String> notRunYet(TrainArgs a, TrainerConfig c) {
        List<String> missing = new java.util.ArrayList<>();
        if (!a.optim().isAdamW()) {
            missing.add("--optim sgd (SGD exists in the engine but is not wired into the trainer's checkpoints)");
        }
        return missing;
    }

    /**
     * The memory plan of this run, printed (the predicted table and the line saying what the planner chose), before
     * any weight is loaded; the arguments to run with. Refuses ({@link CommandException}) when nothing fits.
     */
    private static TrainArgs plan(TrainArgs a, GivenFlags given, Device device, MemoryPlanner.Model model, PrintStream out) {
        Gemma3Config modelConfig = model.text();
        if (model.vision().isPresent()) {
            out.printf(Locale.ROOT, "image-text model: planned with the vision tower and projector, and %d image%s in each sequence (the data's most)%n",
                    model.imagesPerSequence(), model.imagesPerSequence() == 1 ? "" : "s");
        }
        if (model.tokens(a) < a.maxSeqLength()) {
            out.printf(Locale.ROOT, "planned for the data's longest sequence, %,d tokens (--max_seq_length %,d): micro-batches are padded to their longest only%n",
                    model.tokens(a), a.maxSeqLength());
        }
        Planner.Plan plan = Planner.plan(model, a, given, Planner.Budget.forRun(a, device), device.kind());
        String name = a.modelId() != null ? a.modelId() : a.modelPath().toString();
        out.println("plan: " + PlanCommand.describe(plan.args(), modelConfig, name, device.kind()));
        out.print(plan.prediction().report().fullTable());
        return switch (plan) {
            case Planner.Chosen c -> {
                out.println(c.line());
                yield c.args();
            }
            case Planner.Refused r -> throw new CommandException(r.message());
        };
    }

    /**
     * {@code --max_memory} as the CUDA allocator's limit on what it reserves ({@code jtune.cuda.memoryLimit}, which the
     * backend reads when it starts; in a jtune process that is after this, at the first tensor), so that a run that
     * outgrows it fails with the allocator's out-of-memory error naming the categories.
     */
    private static void capDeviceMemory(TrainArgs a, Device device) {
        if (a.maxMemory() != null && device.kind() == Device.Kind.CUDA) {
            System.setProperty("jtune.cuda.memoryLimit", Long.toString(a.maxMemory().bytes()));
        }
    }

    private static OutputDirectory.Start start(TrainArgs a) {
        return switch (a.resumeFromCheckpoint().mode()) {
            case AUTO -> OutputDirectory.Start.AUTO;
            case LATEST -> OutputDirectory.Start.LATEST;
            case NEVER -> OutputDirectory.Start.NEVER;
            case PATH -> OutputDirectory.Start.PATH;
        };
    }

    /** Flags that were accepted but change nothing on this run. */
    static List<String> warnings(TrainArgs a, Device device) {
        List<String> w = new java.util.ArrayList<>();
        if (a.bf16() && device.kind() != Device.Kind.CUDA) {
            w.add("--bf16 on the " + device + ": the cpu backend trains in fp32 (bf16 is for the GPU)");
        }
        if (a.dataloaderNumWorkers() > 0 && !a.lazyPreprocess()) {
            w.add("--dataloader_num_workers " + a.dataloaderNumWorkers() + " does nothing without --lazy_preprocess (records are tokenized on the main thread)");
        }
        return w;
    }

    /** The --deepspeed config's ZeRO stage on a data-parallel run (0 alone, where a stage partitions nothing, or without one). */
    private static int zeroStage(TrainArgs a, int ranks) {
        return ranks > 1 && a.deepspeed() != null ? DeepSpeedConfig.read(a.deepspeed()).zeroStage() : 0;
    }

    /**
     * Whether the optimizer is one the ZeRO stages shard: AdamW's fp32 or 8-bit state on the device or paged, or its fp32
     * state on the host (stepping in step or delayed).
     */
    private static boolean shardable(TrainArgs a) {
        return a.optimizerStatePlacement() != TrainerConfig.OptimizerStatePlacement.HOST
                || a.optim().statePrecision() == TrainerConfig.OptimizerStatePrecision.FP32;
    }

    /**
     * What a data-parallel rank shards: ZeRO stage 1 (the optimizer state) when its ZeRO stage asks for 1, stage 2 (the
     * gradients too) for 2, stage 3 (the layers' weights too) for 3 where layers are recomputed and not offloaded
     * (else stage 2), when the optimizer can have it; nothing alone or otherwise.
     */
    static TrainerConfig.OptimizerSharding sharding(TrainArgs a, int ranks) {
        int stage = zeroStage(a, ranks);
        if (stage == 0 || !shardable(a)) {
            return TrainerConfig.OptimizerSharding.NONE;
        }
        if (stage == 1) {
            return TrainerConfig.OptimizerSharding.STATE;
        }
        return stage == 3 && shardsWeights(a) ? TrainerConfig.OptimizerSharding.PARAMETERS : TrainerConfig.OptimizerSharding.GRADIENTS;
    }

    /**
     * Whether stage 3 can shard the layers' weights: each layer gathered again for its recomputation (with offload_param
     * cpu, the frozen parts in host memory).
     */
    private static boolean shardsWeights(TrainArgs a) {
        return a.gradientCheckpointing();
    }

    /**
     * What a data-parallel rank does not do that its --deepspeed ZeRO stage might suggest: an optimizer the stages do not
     * shard, and under stage 3, weights that stay whole (all, where stage 3 falls back to stage 2).
     */
    static List<String> dataParallelWarnings(TrainArgs a, DistEnv place) {
        int stage = zeroStage(a, place.worldSize());
        if (stage == 0 || stage <= 2 && shardable(a)) {
            return List.of();
        }
        if (!shardable(a)) {
            return List.of("zero_optimization.stage " + stage + ": jtune shards AdamW's state on the GPU or paged (fp32 or 8-bit), and"
                    + " its fp32 state on the host (--offload_optimizer cpu with --optim adamw_torch), not --optim "
                    + a.optim().flagValue() + " with its state " + a.optimizerStatePlacement().name().toLowerCase(Locale.ROOT)
                    + (a.delayedOptimizerStep() ? " and a delayed step" : "") + ", so every GPU holds all of it (plain data parallel)");
        }
        String stage2 = "the optimizer state and the gradients are sharded over the " + place.worldSize() + " ranks (stage 2)";
        if (!a.gradientCheckpointing()) {
            return List.of("zero_optimization.stage 3 shards the layers' weights only with " + Flag.GRADIENT_CHECKPOINTING.cli()
                    + " (each layer is gathered again for its recomputation): the weights stay whole on every GPU; " + stage2);
        }
        if (a.offloadParam() == OffloadParam.CPU && !a.loraEnable()) {
            return List.of("zero_optimization.stage 3 with offload_param cpu: a full fine-tune's layer weights are sharded over the"
                    + " GPUs (each rank's part beside its gradient and optimizer parts), not kept in host memory; frozen weights'"
                    + " parts are");
        }
        return List.of();
    }

    static LoraConfig loraConfig(TrainArgs a) {
        return new LoraConfig(a.loraRank(), a.loraAlpha(), a.loraDropout(), LoraConfig.ALL_LINEAR, a.loraNamespanExclude(), a.numLoraModules());
    }

    /**
     * The run's identity: what may not change under a resume (fixed) and what may (adjustable); see
     * {@link RunIdentity}.
     */
    static RunIdentity identity(TrainArgs a, List<Example> train, Device device, DType dtype, String tokenizer) {
        RunIdentity.Builder b = RunIdentity.builder()
                .fixed("model", "config and weight layout " + RunIdentity.modelFingerprint(a.modelPath()))
                .fixed("tokenizer", tokenizer)
                .fixed("data", RunIdentity.dataFingerprint(train))
                .fixed("training", a.loraEnable() ? "LoRA" : "full fine-tuning");
        if (a.loraEnable()) {
            LoraConfig l = loraConfig(a);
            b.fixed("lora", String.format(Locale.ROOT, "rank %d, alpha %s, dropout %s, targets %s, excluded %s, last %d modules",
                    l.rank(), l.alpha(), l.dropout(), l.targetModules(), l.excludeNamespans(), l.numLoraModules())
                    + (a.visionLora() ? ", and the vision tower's linear modules" : "")); // absent without: older runs' identity stays
            b.fixed("lora_weight_path", a.loraWeightPath() == null ? "none"
                    : RunIdentity.fileFingerprint(a.loraWeightPath().resolve(dev.jtune.gemma.lora.PeftAdapter.WEIGHTS_FILE)));
        }
        b.fixed("bits", a.bits() == 4 ? "4 (" + a.quantType().flagValue() + (a.doubleQuant() ? ", double quantization)" : ")") : "16")
                .fixed("optim", a.optim().flagValue())
                .fixed("seed", a.seed())
                .fixed("per_device_train_batch_size", a.perDeviceTrainBatchSize())
                .fixed("gradient_accumulation_steps", a.gradientAccumulationSteps())
                .fixed("max_seq_length", a.maxSeqLength())
                .adjustable("model_path", a.modelId() != null ? a.modelId() : a.modelPath())
                .adjustable("learning_rate", a.learningRate())
                .adjustable("lr_scheduler_type", a.lrSchedulerType().flagValue())
                .adjustable("warmup", a.warmupSteps() > 0 ? a.warmupSteps() + " steps" : "ratio " + a.warmupRatio())
                .adjustable("weight_decay", a.weightDecay())
                .adjustable("adam", "beta1 " + a.adamBeta1() + ", beta2 " + a.adamBeta2() + ", epsilon " + a.adamEpsilon())
                .adjustable("max_grad_norm", a.maxGradNorm())
                .adjustable("logging_steps", a.loggingSteps())
                .adjustable("save", a.saveStrategy().flagValue() + " every " + a.saveSteps() + ", keep " + (a.saveTotalLimit() == null ? "all" : a.saveTotalLimit())
                        + (a.saveOnlyModel() ? ", model only" : ""))
                .adjustable("eval", a.evalStrategy().flagValue() + " every " + a.effectiveEvalSteps())
                .adjustable("device", device)
                .adjustable("precision", dtype)
                .adjustable("gradient_checkpointing", a.checkpointing());
        // recorded only when not the default, so that earlier checkpoints resume without a note; a checkpoint keeps
        // per-parameter entries, so the offload mode may change under a resume
        if (a.packing()) { // other micro-batches: recorded only when on, so earlier checkpoints resume as before
            b.fixed("packing", "rows of up to " + a.maxSeqLength() + " tokens");
        }
        if (!a.groupByLength()) {
            b.fixed("group_by_length", false);
        }
        if (a.tiledMlp()) { // sums the MLP's parameter gradients tile by tile: the last bits may differ
            b.adjustable("tiled_mlp", a.tiledMlpNumShards() > 0 ? a.tiledMlpNumShards() + " shards" : "auto");
        }
        if (a.offloadOptimizer() != OffloadOptimizer.NONE || a.delayedOptimizerStep()) {
            b.adjustable("offload_optimizer", a.offloadOptimizer().flagValue() + (a.delayedOptimizerStep() ? ", delayed step" : ""));
        }
        return b.build();
    }

    private static void requireVocabulary(List<Example> train, int vocab, GemmaTokenizer tokenizer, Path modelDir) {
        for (var e : train) {
            requireTokenIds(e.ids(), vocab, tokenizer, modelDir, "");
        }
    }

    /** Every id the tokenizer produced fits the model's vocabulary; else an error naming both ({@code hint} appended). */
    static void requireTokenIds(int[] ids, int vocab, GemmaTokenizer tokenizer, Path modelDir, String hint) {
        for (int id : ids) {
            if (id >= vocab) {
                throw new CommandException("the tokenizer (" + tokenizer.source() + ") produced token id " + id
                        + " but the model in " + modelDir + " has a vocabulary of " + vocab + ": they do not belong together" + hint);
            }
        }
    }

    /** Where the embedded default writes its random base model, so that {@code merge} and {@code generate} can use it. */
    static final String DEFAULT_BASE_DIR = "base_model";

    /**
     * The embedded default: QLoRA (NF4 base, LoRA r16) on a small randomly initialised Gemma 3 over the bundled
     * conversations, on the GPU when there is one. On the cpu the vocabulary is compacted to the tokens the data uses (the real
     * 262,144-row embedding would make a one-minute demo take many), which {@link CompactVocabulary} records. The base
     * model is written to {@code base_model/} (with the compact vocabulary, when used) and the adapter names it, so
     * {@code jtune generate --adapter_path} and {@code jtune merge} work on the output. Run twice, it says its run is
     * finished and does nothing.
     */
    static void runDefault(Path outputDir, PrintStream out) {
        OutputDirectory.check(outputDir, null);
        Device device = CudaBackend.deviceCount() > 0 ? Device.cuda(0) : Device.CPU;
        DefaultSetup d = defaultSetup(device, out);
        var config = d.config();
        var examples = d.examples();
        boolean compact = d.vocab() != null;
        TrainerConfig tc = d.trainerConfig();
        DType dtype = d.dtype();
        RunIdentity identity = RunIdentity.builder()
                .fixed("model", "jtune's embedded default: random " + config.numHiddenLayers() + "-layer Gemma 3, vocabulary " + config.vocabSize()
                        + ", hidden " + config.hiddenSize() + ", seed 42, " + dtype)
                .fixed("tokenizer", "bundled Gemma 3 tokenizer")
                .fixed("data", RunIdentity.dataFingerprint(examples))
                .fixed("training", "QLoRA (NF4 base, double quantization), LoRA rank 16, alpha 32")
                .fixed("seed", 42)
                .adjustable("device", device)
                .build();
        OutputDirectory.Plan plan;
        try {
            plan = OutputDirectory.plan(outputDir, OutputDirectory.Start.AUTO, null, identity, Trainer.totalSteps(tc, examples.size()));
        } catch (RunException e) {
            throw new RunException(e.getMessage() + "\nThe embedded default takes no flags: move or delete " + outputDir.toAbsolutePath()
                    + " and run ./jtune again.", e);
        }
        if (plan instanceof OutputDirectory.Plan.Finished) {
            out.println(outputDir.toAbsolutePath() + " already holds the embedded default's finished run: nothing to do. Try what it trained:");
            out.println("  " + usage(outputDir));
            out.println("To run it again, move or delete " + outputDir + "; to train your own model, see ./jtune --help.");
            return;
        }
        try (Scope run = Scope.open("default run", MemoryCategory.WEIGHTS)) {
            Gemma3Model model = d.randomModel();
            OutputDirectory.create(outputDir);
            Path base = outputDir.resolve(DEFAULT_BASE_DIR).toAbsolutePath();
            LoraMerge.export(model, base, LoraMerge.DEFAULT_SHARD_BYTES); // before quantizing: the base a user would merge into
            if (compact) {
                d.vocab().write(base.resolve("compact_vocabulary.json"));
            }
            Trainable trainable = d.qlora(model, base.toString());
            out.printf(Locale.ROOT, "jtune's embedded default: QLoRA (NF4 base, LoRA r16, %,d trainable parameters) on a random %d-layer Gemma 3 "
                            + "(vocabulary %,d%s) on %s%n", trainable.parameterCount(), config.numHiddenLayers(), config.vocabSize(),
                    compact ? ", compacted to the data's tokens" : "", device);
            try (Trainer trainer = Trainer.builder(tc, trainable).train(examples).outputDir(outputDir).progress(Progress.forOutput(out))
                    .padId(d.padId())
                    .info(new Trainer.RunInfo("jtune's embedded default run", identity, defaultSettings(tc))).build()) {
                finish(trainer.run(plan, Long.MAX_VALUE), trainer, outputDir, out);
            }
            out.println("Try what it trained:  " + usage(outputDir));
        }
    }

    /**
     * The embedded default's data, model configuration and training settings on {@code device}: the bundled
     * conversations (on the cpu, over the compact vocabulary the data uses; {@code vocab} is then set), a small Gemma 3,
     * 60 cosine steps at 1e-2, LoRA r16 on every linear.
     */
    record DefaultSetup(Device device, List<Example> examples, CompactVocabulary vocab, int padId, dev.jtune.gemma.config.Gemma3Config config,
                        DType dtype, TrainerConfig trainerConfig, LoraConfig lora) {

        /** The random base (seed 42) with a trained-like embedding scale, in the current scope. */
        Gemma3Model randomModel() {
            Gemma3Model model = Gemma3Model.random(config, device, dtype, 42);
            // a trained model's embedding rows are far larger than N(0, 0.02): with those, logits cannot leave ~0 and a
            // LoRA on the frozen base could barely lower the loss; give the (tied) embedding a trained-like scale
            Ops.copyInto(Tensor.normal(model.embedding().shape(), model.dtype(), device, 43, 0, 0.5), model.embedding());
            return model;
        }

        /** QLoRA of {@code model}: NF4 base (double quantization), the LoRA adapters (seed 42). */
        Trainable qlora(Gemma3Model model, String baseName) {
            model.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
            return Trainable.lora(model, lora, 42, baseName);
        }
    }

    static DefaultSetup defaultSetup(Device device, PrintStream out) {
        GemmaTokenizer tokenizer = GemmaTokenizer.bundled();
        var built = new DatasetBuilder(new ChatTemplate(tokenizer), DataOptions.of(256)).loadBundled();
        out.println(built.stats().summary());
        boolean compact = device.kind() == Device.Kind.CPU;
        CompactVocabulary vocab = compact ? CompactVocabulary.of(built.examples(), tokenizer.padId()) : null;
        var examples = compact ? vocab.remap(built.examples()) : built.examples();
        var config = DefaultModel.config(compact ? vocab.size() : tokenizer.vocabSize(), device.kind() == Device.Kind.CUDA);
        TrainerConfig tc = TrainerConfig.builder().epochs(1).maxSteps(60).learningRate(1e-2).schedule(LrSchedule.Type.COSINE)
                .warmupRatio(0.05).loggingSteps(5).save(TrainerConfig.SaveStrategy.STEPS, 30).saveTotalLimit(2)
                .eval(TrainerConfig.SaveStrategy.NO, 0).build();
        LoraConfig lora = new LoraConfig(16, 32, 0.05, LoraConfig.ALL_LINEAR, List.of("lm_head", "embed_tokens"), -1);
        DType dtype = device.kind() == Device.Kind.CUDA ? DType.BF16 : DType.F32;
        return new DefaultSetup(device, examples, vocab, compact ? vocab.padId() : tokenizer.padId(), config, dtype, tc, lora);
    }

    private static String usage(Path outputDir) {
        return "./jtune generate --adapter_path " + outputDir + " --prompt \"Hello\" --chat   (merge: ./jtune merge --model_path "
                + outputDir.resolve(DEFAULT_BASE_DIR) + " --adapter_path " + outputDir + " --output_dir merged)";
    }

    private static List<RunReport.Setting> defaultSettings(TrainerConfig tc) {
        List<RunReport.Setting> rows = new java.util.ArrayList<>();
        for (var c : TrainerConfig.class.getRecordComponents()) {
            try {
                rows.add(new RunReport.Setting(c.getName(), String.valueOf(c.getAccessor().invoke(tc)),
                        String.valueOf(c.getAccessor().invoke(TrainerConfig.defaults()))));
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
        }
        return rows;
    }

    /** The run's closing lines; {@code outputDir} null for a data-parallel rank other than 0 (it wrote nothing). */
    private static void finish(List<StepRecord> log, Trainer trainer, Path outputDir, PrintStream out) {
        if (!log.isEmpty()) {
            StepRecord first = log.get(0);
            StepRecord last = log.get(log.size() - 1);
            out.printf(Locale.ROOT, "done: loss %.4f -> %.4f over %d steps, %.0f s; peak memory allocated on the device %.2f GiB%n", first.loss(), last.loss(),
                    last.step(), last.elapsedSeconds(), log.stream().mapToDouble(StepRecord::peakGiB).max().orElse(0));
        }
        trainer.memoryReport().ifPresent(m -> out.print(m.table()));
        if (outputDir != null) { // null: a data-parallel rank other than 0, which writes nothing
            out.println("wrote " + outputDir.toAbsolutePath() + " (model or adapter, metrics.jsonl, report.html, checkpoints)");
        }
    }

    /** {@link #config(TrainArgs)} for one rank of a world of {@code ranks}: its size and its optimizer sharding. */
    static TrainerConfig config(TrainArgs a, int ranks) {
        return ranks > 1 ? config(a).toBuilder().worldSize(ranks).optimizerSharding(sharding(a, ranks)).build() : config(a);
    }

    /** The launcher's layout the arguments ask for (--nproc_per_node, --nnodes, --node_rank, --master_addr/port). */
    static DistEnv.Layout layout(TrainArgs a) {
        return new DistEnv.Layout(a.nprocPerNode(), a.nnodes(), a.nodeRank(), a.masterAddr(), a.masterPort());
    }

    static TrainerConfig config(TrainArgs a) {
        return TrainerConfig.builder()
                .epochs(a.numTrainEpochs()).maxSteps(a.maxSteps())
                .batchSize(a.perDeviceTrainBatchSize()).gradientAccumulation(a.gradientAccumulationSteps())
                .learningRate(a.learningRate()).schedule(LrSchedule.Type.valueOf(a.lrSchedulerType().name()))
                .warmupRatio(a.warmupRatio()).warmupSteps(a.warmupSteps())
                .weightDecay(a.weightDecay()).betas(a.adamBeta1(), a.adamBeta2()).epsilon(a.adamEpsilon())
                .maxGradNorm(a.maxGradNorm()).checkpointing(a.checkpointing()).mlpTiling(a.mlpTiling()).keptAttention(a.keepAttention().policy())
                .loggingSteps(a.loggingSteps())
                .save(strategy(a.saveStrategy()), a.saveSteps()).saveTotalLimit(a.saveTotalLimit() == null ? 0 : a.saveTotalLimit())
                .checkpointContents(a.saveOnlyModel() ? TrainerConfig.CheckpointContents.MODEL_ONLY : TrainerConfig.CheckpointContents.MODEL_AND_STATE)
                .eval(strategy(a.evalStrategy()), a.evalSteps() == null ? a.loggingSteps() : a.evalSteps())
                .evalBatchSize(a.perDeviceEvalBatchSize())
                .ddpBucketBytes((long) a.ddpBucketCapMb() << 20)
                .seed(a.seed())
                .metricsFile(a.reportTo().contains(dev.jtune.train.args.ReportTarget.JSONL))
                .htmlReport(a.reportTo().contains(dev.jtune.train.args.ReportTarget.HTML))
                .maxNonfiniteSteps(a.maxNonfiniteSteps())
                .optimizerState(a.optim().statePrecision(), a.optimizerStatePlacement())
                .optimizerStepTiming(a.optimizerStepTiming())
                .activationPlacement(a.activationPlacement())
                .weightPlacement(a.weightPlacement())
                .batching(new Batching(a.groupByLength() ? Batching.Order.GROUP_BY_LENGTH : Batching.Order.RANDOM,
                        a.packing() ? a.maxSeqLength() : 0))
                .groupLearningRates(groupLearningRates(a))
                .build();
    }

    /** The module names Gemma3-Finetune's --vision_lr and --projector_lr look for in parameter names. */
    static final String VISION_TOWER_NAME = "vision_tower";
    static final String PROJECTOR_NAME = "multi_modal_projector";

    /** Gemma3-Finetune's --projector_lr and --vision_lr: the parameters whose names contain its module's, at that rate. */
    static List<TrainerConfig.GroupLearningRate> groupLearningRates(TrainArgs a) {
        List<TrainerConfig.GroupLearningRate> rules = new java.util.ArrayList<>();
        if (a.projectorLr() != null) {
            rules.add(new TrainerConfig.GroupLearningRate(PROJECTOR_NAME, a.projectorLr()));
        }
        if (a.visionLr() != null) {
            rules.add(new TrainerConfig.GroupLearningRate(VISION_TOWER_NAME, a.visionLr()));
        }
        return rules;
    }

    /**
     * Says which trained parameters a group learning rate reaches: a count per rule, or that it reaches none (a frozen
     * tower, a text-only model: the seed's scripts pass --vision_lr to those too, and it does nothing there either).
     */
    static void describeGroupLearningRates(TrainerConfig config, Trainable trainable, PrintStream out) {
        for (TrainerConfig.GroupLearningRate r : config.groupLearningRates()) {
            String flag = (r.nameContains().equals(VISION_TOWER_NAME) ? Flag.VISION_LR : Flag.PROJECTOR_LR).cli();
            long n = trainable.namedParameters().keySet().stream().filter(k -> k.contains(r.nameContains())).count();
            out.println(n == 0 ? "note: " + flag + " reaches no trained parameter (no " + r.nameContains() + " trains in this run)"
                    : String.format(Locale.ROOT, "%s %.3g: %d trained parameters of %s", flag, r.learningRate(), n, r.nameContains()));
        }
    }

    private static TrainerConfig.SaveStrategy strategy(IntervalStrategy s) {
        return TrainerConfig.SaveStrategy.valueOf(s.name());
    }

    /**
     * What the planner must take as given: the user's flags, and in a data-parallel world {@code --offload_optimizer}
     * too (none unless the user asked): a rank's optimizer goes to the host only where the user says so, since the host
     * one runs beside data parallel only under a ZeRO stage ({@link TrainerConfig#HOST_OPTIMIZER_NOT_WITH_DATA_PARALLEL}).
     */
    static GivenFlags plannerGiven(GivenFlags given, DistEnv place) {
        if (!place.isDistributed() || given.contains(Flag.OFFLOAD_OPTIMIZER)) {
            return given;
        }
        java.util.Map<Flag, String> origins = new java.util.EnumMap<>(Flag.class);
        origins.putAll(given.origins());
        origins.put(Flag.OFFLOAD_OPTIMIZER, "data parallel");
        return new GivenFlags(origins);
    }

    /** A worker's GPU: cuda:LOCAL_RANK (torchrun's convention); --device may only say auto or cuda. */
    static Device workerDevice(String flag, DistEnv place) {
        if (flag != null && !flag.equals("auto") && !flag.equals("cuda") && !flag.equals("gpu")) {
            throw new CommandException("rank " + place.rank() + " of a data-parallel run trains on cuda:LOCAL_RANK (cuda:" + place.localRank()
                    + "), not --device " + flag + ": leave --device out");
        }
        int gpus = CudaBackend.deviceCount();
        if (place.localRank() >= gpus) {
            throw new CommandException("rank " + place.rank() + " (LOCAL_RANK " + place.localRank() + ") needs cuda:" + place.localRank()
                    + ", but this machine has " + gpus + " GPU(s)" + (gpus == 0 ? " (" + CudaBackend.unavailableReason() + ")" : "")
                    + ": data parallel runs one worker per GPU through NCCL; lower --nproc_per_node");
        }
        return Device.cuda(place.localRank());
    }

    /** The world of a data-parallel rank: rank 0 makes NCCL's id and hands it out (rendezvous), every rank joins; null alone. */
    private static Collectives join(DistEnv place, Device device, Duration timeout, PrintStream out) {
        if (!place.isDistributed()) {
            return null;
        }
        out.printf(Locale.ROOT, "rank %d of %d (cuda:%d): meeting the other ranks at %s:%d%n", place.rank(), place.worldSize(),
                place.localRank(), place.masterAddr(), place.masterPort());
        byte[] id = Rendezvous.exchange(place, () -> NcclCollectives.newUniqueId(device), timeout);
        return NcclCollectives.join(device, place.rank(), place.worldSize(), id, timeout);
    }

    static Device device(String flag) {
        if (flag == null || flag.equals("auto")) {
            return CudaBackend.deviceCount() > 0 ? Device.cuda(0) : Device.CPU;
        }
        try {
            return Device.parse(flag);
        } catch (IllegalArgumentException e) { // generate and merge pass the text as given
            throw new dev.jtune.train.args.ArgsException("--device: " + e.getMessage());
        }
    }
}
