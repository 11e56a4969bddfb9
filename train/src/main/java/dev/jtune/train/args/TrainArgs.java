package dev.jtune.train.args;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.loop.TrainerConfig;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.RecordComponent;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * Every setting of a training run, resolved: HF TrainingArguments' defaults, then a {@code --preset}, then a
 * {@code --config} file, then the command line. One component per implemented {@link Flag}, named after it in camel
 * case ({@code --learning_rate} is {@link #learningRate()}); {@link Flag} is the table that defines names, types,
 * defaults and help, and this record is built from it.
 *
 * <p>After {@link #parse}, {@link #modelPath()} is always a local directory: {@code --model_id} is resolved in the HF
 * cache (jtune has no network) and kept as the model's name.
 */
public record TrainArgs(
        // model
        String modelId,
        Path modelPath,
        Path cacheDir,
        // data
        Path dataPath,
        Path evalDataPath,
        double evalRatio,
        int maxSeqLength,
        boolean packing,
        boolean groupByLength,
        boolean lazyPreprocess,
        boolean skipBadRecords,
        int dataloaderNumWorkers,
        Path imageFolder,
        // training
        Path outputDir,
        int perDeviceTrainBatchSize,
        int perDeviceEvalBatchSize,
        int gradientAccumulationSteps,
        double numTrainEpochs,
        int maxSteps,
        boolean freezeLlm,
        boolean freezeVisionTower,
        boolean freezeProjector,
        boolean visionLora,
        boolean gradientCheckpointing,
        CheckpointGranularity checkpointingGranularity,
        KeepAttention keepAttention,
        boolean bf16,
        int seed,
        int maxNonfiniteSteps,
        IntervalStrategy evalStrategy,
        Integer evalSteps,
        // optimizer
        Optim optim,
        double learningRate,
        double weightDecay,
        double adamBeta1,
        double adamBeta2,
        double adamEpsilon,
        double maxGradNorm,
        LrSchedulerType lrSchedulerType,
        double warmupRatio,
        int warmupSteps,
        OffloadOptimizer offloadOptimizer,
        OffloadParam offloadParam,
        boolean delayedOptimizerStep,
        Double visionLr,
        Double projectorLr,
        boolean offloadActivations,
        String gradientCheckpointingKwargs,
        boolean tiledMlp,
        int tiledMlpNumShards,
        // LoRA and quantization
        boolean loraEnable,
        int loraRank,
        int loraAlpha,
        double loraDropout,
        List<String> loraNamespanExclude,
        int numLoraModules,
        int bits,
        boolean doubleQuant,
        QuantType quantType,
        Path loraWeightPath,
        // checkpoints and logging
        IntervalStrategy saveStrategy,
        int saveSteps,
        Integer saveTotalLimit,
        boolean saveOnlyModel,
        Resume resumeFromCheckpoint,
        boolean overwriteOutputDir,
        int loggingSteps,
        List<ReportTarget> reportTo,
        // system
        String device,
        MemorySize maxMemory,
        Preset preset,
        Path config,
        String deepspeed,
        int nprocPerNode,
        int nnodes,
        int nodeRank,
        String masterAddr,
        int masterPort,
        int ddpTimeout,
        int ddpBucketCapMb) {

    public TrainArgs {
        Objects.requireNonNull(outputDir, "outputDir");
        Objects.requireNonNull(evalStrategy, "evalStrategy");
        Objects.requireNonNull(optim, "optim");
        Objects.requireNonNull(offloadOptimizer, "offloadOptimizer");
        Objects.requireNonNull(offloadParam, "offloadParam");
        Objects.requireNonNull(lrSchedulerType, "lrSchedulerType");
        Objects.requireNonNull(quantType, "quantType");
        Objects.requireNonNull(checkpointingGranularity, "checkpointingGranularity");
        Objects.requireNonNull(keepAttention, "keepAttention");
        Objects.requireNonNull(saveStrategy, "saveStrategy");
        Objects.requireNonNull(resumeFromCheckpoint, "resumeFromCheckpoint");
        Objects.requireNonNull(device, "device");
        loraNamespanExclude = List.copyOf(loraNamespanExclude);
        reportTo = List.copyOf(reportTo);
    }

    // ---- parsing ------------------------------------------------------------------------------------------------

    /**
     * Parses a command line (defaults &lt; --preset &lt; --config &lt; command line), resolves --model_id in the HF
     * cache, checks that the files named exist, and validates. Every problem found is reported together in one
     * {@link ArgsException}. {@code --help} is not a run: use {@link CommandLine#parse} to handle it.
     */
    public static TrainArgs parse(String... args) {
        return switch (CommandLine.parse(args)) {
            case CommandLine.Train t -> t.args();
            case CommandLine.Help h -> throw new ArgsException(Flag.HELP.cli() + " asks for the help text, not a run");
        };
    }

    /** HF's defaults (and the seed's, for its flags), with nothing resolved or checked; model and data unset. */
    public static TrainArgs defaults() {
        Map<Flag, Object> values = new EnumMap<>(Flag.class);
        for (Flag f : Flag.implemented()) {
            values.put(f, f.defaultValue());
        }
        return of(values);
    }

    /**
     * These settings with some flags changed (the memory planner's choice, or a change it suggests). Each value is
     * checked as a parsed one would be, and the result's contradictions are refused ({@link ArgsException}); the
     * files are not checked again.
     */
    public TrainArgs with(Map<Flag, ?> changes) {
        Map<Flag, Object> values = new EnumMap<>(Flag.class);
        for (Flag f : Flag.implemented()) {
            values.put(f, get(f));
        }
        List<String> problems = new ArrayList<>();
        changes.forEach((f, v) -> {
            if (f.support() != Flag.Support.IMPLEMENTED) {
                throw new IllegalArgumentException(f.cli() + " is not a setting (" + f.support() + ")");
            }
            String bad = f.check(v);
            if (bad != null) {
                problems.add(f.cli() + " " + f.format(v) + " " + bad);
            }
            values.put(f, v);
        });
        if (problems.isEmpty()) {
            TrainArgs changed = of(values);
            problems.addAll(changed.contradictions(CommandLine.Purpose.PLAN));
            if (problems.isEmpty()) {
                return changed;
            }
        }
        throw new ArgsException(problems);
    }

    // ---- derived settings ---------------------------------------------------------------------------------------

    /** The checkpoint this run resumes from, if any (see {@link Resume}). */
    public Optional<Path> checkpointToResume() {
        return resumeFromCheckpoint.checkpoint(outputDir, overwriteOutputDir);
    }

    /** Warmup in optimizer steps for a run of totalSteps: --warmup_steps if set, else ceil(ratio x total), as HF. */
    public long warmupStepsFor(long totalSteps) {
        return warmupSteps > 0 ? warmupSteps : (long) Math.ceil(warmupRatio * totalSteps);
    }

    /** What --gradient_checkpointing with --checkpointing_granularity keeps for backward. */
    public Gemma3Model.Checkpointing checkpointing() {
        if (!gradientCheckpointing) {
            return Gemma3Model.Checkpointing.NONE;
        }
        return checkpointingGranularity == CheckpointGranularity.HALF ? Gemma3Model.Checkpointing.HALVES : Gemma3Model.Checkpointing.LAYERS;
    }

    /** Where the optimizer state lives: on the host with --offload_optimizer cpu, else where --optim puts it. */
    public TrainerConfig.OptimizerStatePlacement optimizerStatePlacement() {
        return offloadOptimizer == OffloadOptimizer.CPU ? TrainerConfig.OptimizerStatePlacement.HOST : optim.statePlacement();
    }

    /** Where the decoder layers' weights live: pinned host memory with --offload_param cpu, else the device. */
    public TrainerConfig.WeightPlacement weightPlacement() {
        return offloadParam == OffloadParam.CPU ? TrainerConfig.WeightPlacement.HOST : TrainerConfig.WeightPlacement.DEVICE;
    }

    /**
     * Where checkpointed layer inputs wait for backward: pinned host memory with --offload_activations or
     * --gradient_checkpointing_kwargs '{"offload": true}', else the device.
     */
    public TrainerConfig.ActivationPlacement activationPlacement() {
        return offloadActivations || Boolean.TRUE.equals(checkpointingKwargs(new ArrayList<>()).get("offload"))
                ? TrainerConfig.ActivationPlacement.HOST : TrainerConfig.ActivationPlacement.DEVICE;
    }

    /** --gradient_checkpointing_kwargs as key to value ("offload": Boolean, "use_reentrant": Boolean); problems added to {@code p}. */
    private Map<String, Object> checkpointingKwargs(List<String> p) {
        Map<String, Object> out = new java.util.LinkedHashMap<>();
        if (gradientCheckpointingKwargs == null || gradientCheckpointingKwargs.isBlank()) {
            return out;
        }
        String flag = Flag.GRADIENT_CHECKPOINTING_KWARGS.cli();
        com.fasterxml.jackson.databind.JsonNode json;
        try {
            json = JSON.readTree(gradientCheckpointingKwargs);
        } catch (JsonProcessingException e) {
            p.add(flag + " is not JSON: " + e.getOriginalMessage() + " (expected e.g. '{\"offload\": true}')");
            return out;
        }
        if (json == null || !json.isObject()) {
            p.add(flag + " must be a JSON object, e.g. '{\"offload\": true}', got " + gradientCheckpointingKwargs);
            return out;
        }
        json.properties().forEach(e -> {
            switch (e.getKey()) {
                case "offload", "use_reentrant" -> {
                    if (e.getValue().isBoolean()) {
                        out.put(e.getKey(), e.getValue().booleanValue());
                    } else {
                        p.add(flag + ": \"" + e.getKey() + "\" must be true or false, got " + e.getValue());
                    }
                }
                default -> p.add(flag + ": unknown key \"" + e.getKey() + "\" (jtune knows \"offload\" and \"use_reentrant\")");
            }
        });
        return out;
    }

    /** How each layer's MLP half runs over the tokens: whole, or tiled (--tiled_mlp, --tiled_mlp_num_shards). */
    public Gemma3Model.MlpTiling mlpTiling() {
        if (!tiledMlp) {
            return Gemma3Model.MlpTiling.NONE;
        }
        return tiledMlpNumShards > 0 ? Gemma3Model.MlpTiling.shards(tiledMlpNumShards) : Gemma3Model.MlpTiling.AUTO;
    }

    /** When a step's update reaches the weights: one step late with --delayed_optimizer_step. */
    public TrainerConfig.OptimizerStepTiming optimizerStepTiming() {
        return delayedOptimizerStep ? TrainerConfig.OptimizerStepTiming.DELAYED_ONE_STEP : TrainerConfig.OptimizerStepTiming.IMMEDIATE;
    }

    /** Steps between evaluations with --eval_strategy steps: --eval_steps, else --logging_steps (HF's rule). */
    public int effectiveEvalSteps() {
        return evalSteps != null ? evalSteps : loggingSteps;
    }

    /** The value of one implemented flag, typed as its component. */
    public Object get(Flag flag) {
        if (flag.support() != Flag.Support.IMPLEMENTED) {
            throw new IllegalArgumentException(flag.cli() + " is not a setting (" + flag.support() + ")");
        }
        try {
            return component(flag).getAccessor().invoke(this);
        } catch (IllegalAccessException | InvocationTargetException e) {
            throw new IllegalStateException(e);
        }
    }

    // ---- the run log ----------------------------------------------------------------------------------------------

    /**
     * The resolved settings, one per line in table order: {@code learning_rate = 0.0001  (default 5e-05)}; values
     * that differ from the default say so.
     */
    public String describe() {
        int width = 0;
        for (Flag f : Flag.implemented()) {
            width = Math.max(width, f.flagName().length());
        }
        StringBuilder sb = new StringBuilder();
        for (Flag f : Flag.implemented()) {
            Object v = get(f);
            sb.append(String.format(java.util.Locale.ROOT, "%-" + width + "s = %s", f.flagName(), f.format(v)));
            if (!Objects.equals(v, f.defaultValue())) {
                sb.append("  (default ").append(f.format(f.defaultValue())).append(')');
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    /** The settings as report rows: flag name, value and default as the flag spells them, in table order. */
    public List<dev.jtune.train.report.RunReport.Setting> settings() {
        List<dev.jtune.train.report.RunReport.Setting> rows = new ArrayList<>();
        for (Flag f : Flag.implemented()) {
            rows.add(new dev.jtune.train.report.RunReport.Setting(f.flagName(), f.format(get(f)), f.format(f.defaultValue())));
        }
        return rows;
    }

    // ---- JSON -----------------------------------------------------------------------------------------------------

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** The settings as a JSON object of flag name -> value, in table order; readable by {@link #fromJson} and --config. */
    public String toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        for (Flag f : Flag.implemented()) {
            m.put(f.flagName(), f.toJson(get(f)));
        }
        try {
            return JSON.writeValueAsString(m) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes {@link #toJson()} to a file (atomically: a temporary file, then a rename). */
    public void writeJson(Path file) {
        try {
            dev.jtune.engine.io.AtomicFiles.writeString(file, toJson());
        } catch (IOException e) {
            throw new dev.jtune.train.loop.RunException("writing " + file, e);
        }
    }

    /**
     * Reads settings written by {@link #toJson()} (or any JSON object of flag -> value: missing flags take their
     * defaults, a preset named in it applies first). Checks types, ranges and contradictions, not the files.
     */
    public static TrainArgs fromJson(String json) {
        return ArgsParser.fromJson(json, "saved arguments");
    }

    /** {@link #fromJson(String)} of a file. */
    public static TrainArgs readJson(Path file) {
        try {
            return ArgsParser.fromJson(Files.readString(file, StandardCharsets.UTF_8), "saved arguments " + file);
        } catch (IOException e) {
            throw new ArgsException("cannot read saved arguments " + file + ": " + e.getMessage());
        }
    }

    // ---- validation -----------------------------------------------------------------------------------------------

    /** Contradictions and missing requirements between flags; each problem names the flags. */
    List<String> contradictions() {
        return contradictions(CommandLine.Purpose.TRAIN);
    }

    /** {@link #contradictions()}; a plan needs no data, so what a run must be given is not required of it. */
    List<String> contradictions(CommandLine.Purpose purpose) {
        List<String> p = new ArrayList<>();
        if (modelId == null && modelPath == null && purpose == CommandLine.Purpose.TRAIN) { // a plan may name a built-in config instead
            p.add("a model is required: " + Flag.MODEL_ID.cli() + " NAME (from the HF cache) or " + Flag.MODEL_PATH.cli() + " DIR");
        }
        for (Flag f : Flag.implemented()) {
            if (f.required() && get(f) == null && purpose == CommandLine.Purpose.TRAIN) {
                p.add(f.cli() + " is required: " + f.help());
            }
        }
        if (loraEnable && !freezeLlm) {
            p.add(Flag.LORA_ENABLE.cli() + " needs " + Flag.FREEZE_LLM.cli() + ": LoRA trains adapters on a frozen base"
                    + " (as the seed's tool requires); add " + Flag.FREEZE_LLM.cli() + " True");
        }
        if (nodeRank >= nnodes) {
            p.add(Flag.NODE_RANK.cli() + " " + nodeRank + " must be below " + Flag.NNODES.cli() + " " + nnodes + " (machines are numbered from 0)");
        }
        if (nnodes > 1 && (masterAddr == null || masterAddr.isBlank())) {
            p.add(Flag.NNODES.cli() + " " + nnodes + " needs " + Flag.MASTER_ADDR.cli() + ": the address of node 0, where rank 0 waits for the others");
        }
        if (nprocPerNode * (long) nnodes > 1 && offloadOptimizer == OffloadOptimizer.CPU && deepspeed == null) { // a ZeRO stage may shard it
            p.add(Flag.NPROC_PER_NODE.cli() + " x " + Flag.NNODES.cli() + " over 1 with " + Flag.OFFLOAD_OPTIMIZER.cli() + " cpu: "
                    + TrainerConfig.HOST_OPTIMIZER_NOT_WITH_DATA_PARALLEL);
        }
        if (visionLora && !loraEnable) {
            p.add(Flag.VISION_LORA.cli() + " needs " + Flag.LORA_ENABLE.cli() + ": it puts LoRA on the vision tower beside the language model's");
        }
        if (visionLora && !freezeVisionTower) {
            p.add(Flag.VISION_LORA.cli() + " needs " + Flag.FREEZE_VISION_TOWER.cli() + " True: the adapters train beside a frozen"
                    + " tower (as the seed's tool requires)");
        }
        if (freezeLlm && !loraEnable && freezeVisionTower && freezeProjector) {
            p.add(Flag.FREEZE_LLM.cli() + ", " + Flag.FREEZE_VISION_TOWER.cli() + " and " + Flag.FREEZE_PROJECTOR.cli()
                    + " without " + Flag.LORA_ENABLE.cli() + " leave nothing to train");
        }
        if (!(learningRate > 0)) {
            for (Flag f : List.of(Flag.VISION_LR, Flag.PROJECTOR_LR)) {
                Double lr = (Double) get(f);
                if (lr != null && lr > 0) {
                    p.add(f.cli() + " " + f.format(lr) + " is scheduled as a multiple of " + Flag.LEARNING_RATE.cli()
                            + ", which is " + Flag.LEARNING_RATE.format(learningRate) + ": give " + Flag.LEARNING_RATE.cli() + " a positive rate");
                }
            }
        }
        if (bits == 4 && !loraEnable) {
            p.add(Flag.BITS.cli() + " 4 needs " + Flag.LORA_ENABLE.cli() + ": 4-bit weights are frozen, so there would be"
                    + " nothing to train");
        }
        if (warmupRatio > 0 && warmupSteps > 0) {
            p.add(Flag.WARMUP_RATIO.cli() + " " + Flag.WARMUP_RATIO.format(warmupRatio) + " and " + Flag.WARMUP_STEPS.cli()
                    + " " + warmupSteps + " are both set: choose one");
        }
        List<String> kwargsProblems = new ArrayList<>();
        checkpointingKwargs(kwargsProblems);
        p.addAll(kwargsProblems);
        if (kwargsProblems.isEmpty() && activationPlacement() == TrainerConfig.ActivationPlacement.HOST && !gradientCheckpointing) {
            p.add((offloadActivations ? Flag.OFFLOAD_ACTIVATIONS.cli() : Flag.GRADIENT_CHECKPOINTING_KWARGS.cli() + "'s offload")
                    + " moves the layer inputs --gradient_checkpointing keeps to the host: it needs " + Flag.GRADIENT_CHECKPOINTING.cli());
        }
        if (tiledMlpNumShards > 0 && !tiledMlp) {
            p.add(Flag.TILED_MLP_NUM_SHARDS.cli() + " " + tiledMlpNumShards + " sets the tiles of " + Flag.TILED_MLP.cli()
                    + ": it needs " + Flag.TILED_MLP.cli());
        }
        String offload = Flag.OFFLOAD_OPTIMIZER.cli() + " cpu" + (deepspeed != null ? " (or the --deepspeed config's offload_optimizer)" : "");
        if (delayedOptimizerStep && offloadOptimizer != OffloadOptimizer.CPU) {
            p.add(Flag.DELAYED_OPTIMIZER_STEP.cli() + " needs " + Flag.OFFLOAD_OPTIMIZER.cli() + " cpu: only a host update can"
                    + " overlap the next step");
        }
        if (offloadOptimizer == OffloadOptimizer.CPU && optim.statePlacement() == TrainerConfig.OptimizerStatePlacement.PAGED_HOST) {
            p.add(Flag.OPTIM.cli() + " " + optim.flagValue() + " keeps the state in host memory the GPU maps and updates it on the"
                    + " GPU, " + offload + " updates it on the host: choose one (adamw_bnb_8bit with host offload keeps 8-bit"
                    + " state on the host)");
        }
        if (offloadOptimizer == OffloadOptimizer.CPU && !optim.isAdamW()) {
            p.add(offload + " is host-offloaded AdamW; " + Flag.OPTIM.cli() + " " + optim.flagValue() + " has no host update");
        }
        String offloadParams = Flag.OFFLOAD_PARAM.cli() + " cpu" + (deepspeed != null ? " (or the --deepspeed config's offload_param)" : "");
        if (offloadParam == OffloadParam.CPU && !gradientCheckpointing) {
            p.add(offloadParams + " needs " + Flag.GRADIENT_CHECKPOINTING.cli() + ": a layer's weights leave the GPU after its"
                    + " forward, so backward must recompute the layer (with them copied back) rather than keep what it saved");
        }
        if (offloadParam == OffloadParam.CPU && !loraEnable && (offloadOptimizer != OffloadOptimizer.CPU || delayedOptimizerStep)) {
            p.add(offloadParams + " with a full fine-tune needs " + offload + " without " + Flag.DELAYED_OPTIMIZER_STEP.cli()
                    + ": the trained weights then live on the host and the host optimizer updates them in place (as DeepSpeed"
                    + " pairs offload_param with offload_optimizer); or train LoRA (" + Flag.LORA_ENABLE.cli() + ")");
        }
        if (maxSteps <= 0 && numTrainEpochs <= 0) {
            p.add(Flag.MAX_STEPS.cli() + " " + maxSteps + " and " + Flag.NUM_TRAIN_EPOCHS.cli() + " "
                    + Flag.NUM_TRAIN_EPOCHS.format(numTrainEpochs) + " leave nothing to train: set one of them above 0");
        }
        if (saveStrategy == IntervalStrategy.STEPS && saveSteps <= 0) {
            p.add(Flag.SAVE_STRATEGY.cli() + " steps needs " + Flag.SAVE_STEPS.cli() + " > 0, got " + saveSteps
                    + " (or use " + Flag.SAVE_STRATEGY.cli() + " epoch / no)");
        }
        if (evalStrategy != IntervalStrategy.NO && evalDataPath == null && evalRatio == 0) {
            p.add(Flag.EVAL_STRATEGY.cli() + " " + evalStrategy.flagValue() + " needs evaluation data: "
                    + Flag.EVAL_DATA_PATH.cli() + " or " + Flag.EVAL_RATIO.cli() + " > 0");
        }
        if (evalDataPath != null && evalRatio > 0) {
            p.add(Flag.EVAL_DATA_PATH.cli() + " and " + Flag.EVAL_RATIO.cli() + " " + Flag.EVAL_RATIO.format(evalRatio)
                    + " are both set: choose one source of evaluation data");
        }
        if (loraWeightPath != null && !loraEnable) {
            p.add(Flag.LORA_WEIGHT_PATH.cli() + " starts LoRA training from an adapter: it needs " + Flag.LORA_ENABLE.cli());
        }
        if (resumeFromCheckpoint.mode() == Resume.Mode.PATH && overwriteOutputDir
                && resumeFromCheckpoint.path().toAbsolutePath().normalize().startsWith(outputDir.toAbsolutePath().normalize())) {
            p.add(Flag.RESUME_FROM_CHECKPOINT.cli() + " " + resumeFromCheckpoint.path() + " lies in " + Flag.OUTPUT_DIR.cli() + ", which "
                    + Flag.OVERWRITE_OUTPUT_DIR.cli() + " clears first: choose one");
        }
        if (resumeFromCheckpoint.mode() == Resume.Mode.LATEST && overwriteOutputDir) {
            p.add(Flag.RESUME_FROM_CHECKPOINT.cli() + " latest resumes from output_dir, which "
                    + Flag.OVERWRITE_OUTPUT_DIR.cli() + " says to start afresh: choose one");
        }
        return p;
    }

    /** Files that must exist: the model directory, the data, a checkpoint to resume from. */
    List<String> missingFiles() {
        List<String> p = new ArrayList<>();
        if (modelPath != null) {
            if (!Files.isDirectory(modelPath)) {
                p.add(Flag.MODEL_PATH.cli() + " " + modelPath + " is not a directory");
            } else if (!Files.isRegularFile(modelPath.resolve("config.json"))) {
                p.add(Flag.MODEL_PATH.cli() + " " + modelPath + " has no config.json: not an HF checkpoint directory");
            }
        }
        if (dataPath != null && !Files.exists(dataPath)) {
            p.add(Flag.DATA_PATH.cli() + " " + dataPath + " does not exist");
        }
        if (loraWeightPath != null && !Files.isRegularFile(loraWeightPath.resolve("adapter_config.json"))) {
            p.add(Flag.LORA_WEIGHT_PATH.cli() + " " + loraWeightPath + " has no adapter_config.json: not a peft adapter directory");
        }
        if (imageFolder != null && !Files.isDirectory(imageFolder)) {
            p.add(Flag.IMAGE_FOLDER.cli() + " " + imageFolder + " is not a directory");
        }
        if (evalDataPath != null && !Files.exists(evalDataPath)) {
            p.add(Flag.EVAL_DATA_PATH.cli() + " " + evalDataPath + " does not exist");
        }
        switch (resumeFromCheckpoint.mode()) {
            case PATH -> {
                if (!Files.isDirectory(resumeFromCheckpoint.path())) {
                    p.add(Flag.RESUME_FROM_CHECKPOINT.cli() + " " + resumeFromCheckpoint.path() + " is not a directory");
                }
            }
            case LATEST -> {
                if (!overwriteOutputDir && Resume.newestCheckpoint(outputDir).isEmpty()) {
                    p.add(Flag.RESUME_FROM_CHECKPOINT.cli() + " " + resumeFromCheckpoint.flagValue()
                            + ": no checkpoint-N directory in " + Flag.OUTPUT_DIR.cli() + " " + outputDir);
                }
            }
            default -> { }
        }
        return p;
    }

    // ---- construction from the table ----------------------------------------------------------------------------

    private static final Map<Flag, RecordComponent> COMPONENTS = new EnumMap<>(Flag.class);
    private static final Constructor<TrainArgs> CONSTRUCTOR;

    static {
        RecordComponent[] rc = TrainArgs.class.getRecordComponents();
        Map<String, RecordComponent> byName = new LinkedHashMap<>();
        for (RecordComponent c : rc) {
            byName.put(c.getName(), c);
        }
        for (Flag f : Flag.implemented()) {
            RecordComponent c = byName.remove(f.componentName());
            if (c == null) {
                throw new ExceptionInInitializerError("flag " + f.cli() + " has no TrainArgs component " + f.componentName());
            }
            COMPONENTS.put(f, c);
        }
        if (!byName.isEmpty()) {
            throw new ExceptionInInitializerError("TrainArgs components without a flag: " + byName.keySet());
        }
        Class<?>[] types = new Class<?>[rc.length];
        for (int i = 0; i < rc.length; i++) {
            types[i] = rc[i].getType();
        }
        try {
            CONSTRUCTOR = TrainArgs.class.getDeclaredConstructor(types);
        } catch (NoSuchMethodException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    static RecordComponent component(Flag f) {
        return COMPONENTS.get(f);
    }

    /** Builds TrainArgs from a value per implemented flag (the table's types). */
    static TrainArgs of(Map<Flag, Object> values) {
        RecordComponent[] rc = TrainArgs.class.getRecordComponents();
        Object[] args = new Object[rc.length];
        for (Flag f : Flag.implemented()) {
            RecordComponent c = COMPONENTS.get(f);
            int index = indexOf(rc, c.getName());
            Object v = values.get(f);
            if (v == null && c.getType().isPrimitive()) {
                throw new IllegalStateException(f.cli() + " has no value");
            }
            args[index] = v;
        }
        try {
            return CONSTRUCTOR.newInstance(args);
        } catch (InvocationTargetException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException(e.getCause());
        } catch (InstantiationException | IllegalAccessException | IllegalArgumentException e) {
            throw new IllegalStateException("building TrainArgs from the flag table: " + e, e);
        }
    }

    private static int indexOf(RecordComponent[] rc, String name) {
        for (int i = 0; i < rc.length; i++) {
            if (rc[i].getName().equals(name)) {
                return i;
            }
        }
        throw new IllegalStateException(name);
    }
}
