package dev.jtune.train.args;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.function.Predicate;

/**
 * A DeepSpeed config as {@code --deepspeed} takes it, read the way HF's Trainer reads one and mapped onto jtune's
 * flags. Reading classifies every key; {@link #apply} then checks the config against the flags and sets the flags it
 * decides. On one GPU the ZeRO stage partitions nothing (beside data parallel, stage 1 shards AdamW's state over the
 * ranks and stages 2-3 its gradients too: {@code TrainCommand.sharding}), so what remains of DeepSpeed is:
 * <ul>
 *   <li>{@code zero_optimization.offload_optimizer.device cpu} (stage 1-3): {@code --offload_optimizer cpu}, unless that
 *       flag says otherwise (a conflict); {@code offload_param.device cpu} (stage 3) likewise {@code --offload_param cpu}.
 *       {@code nvme} is refused.</li>
 *   <li>{@code bf16.enabled}, {@code fp16.enabled}, {@code train_micro_batch_size_per_gpu},
 *       {@code gradient_accumulation_steps}, {@code train_batch_size} (micro x accumulation x world size 1),
 *       {@code gradient_clipping} and the {@code optimizer} block's {@code lr}, {@code betas}, {@code eps},
 *       {@code weight_decay}: {@code "auto"} takes the flag's value; any other value must equal it. As in HF's Trainer
 *       ({@code HfTrainerDeepSpeedConfig.fill_match}) the flag's value is its default when it was not given, so a
 *       DeepSpeed value that differs from a default is a conflict too, named with both values and both sources.
 *       An absent optimizer or scheduler parameter is DeepSpeed's default for it (lr 0.001, warmup 1000 steps...), and
 *       an absent {@code gradient_clipping} is DeepSpeed's 0, no clipping; those must agree as well.</li>
 *   <li>The {@code optimizer} block is DeepSpeed's fp32 AdamW (type AdamW, or Adam in its default AdamW mode). HF's
 *       Trainer lets the block win over {@code --optim}; jtune takes it when {@code --optim} was not given and calls an
 *       explicit, different {@code --optim} a conflict.</li>
 *   <li>The {@code scheduler} block sets {@code --lr_scheduler_type} when that flag was not given (HF's Trainer uses
 *       DeepSpeed's scheduler then): WarmupDecayLR is linear, WarmupLR constant_with_warmup, WarmupCosineLR cosine.
 *       What has no jtune equivalent is refused: other types, a warmup that does not start at 0, DeepSpeed's log warmup
 *       (its default) over a warmup of some steps, a cosine floor chosen above 0.</li>
 *   <li>Keys with no meaning on one GPU (bucket sizes, communication overlap, stage-3 partitioning, NVMe io, fp16
 *       loss scaling, DeepSpeed's own logging, its activation-checkpointing API) and keys jtune does not know are listed
 *       in one warning.</li>
 * </ul>
 * {@code activation_checkpointing.cpu_checkpointing} is warned about, not refused: HF's Trainer never applies
 * DeepSpeed's activation-checkpointing API (transformers checkpoints through torch, {@code --gradient_checkpointing}),
 * so the same config under HF offloads no activations either; activation offload belongs to the next issue.
 */
public final class DeepSpeedConfig {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** DeepSpeed's FusedAdam / DeepSpeedCPUAdam defaults, for absent optimizer parameters. */
    private static final double DS_LR = 1e-3;
    private static final double DS_EPS = 1e-8;
    private static final double DS_BETA1 = 0.9;
    private static final double DS_BETA2 = 0.999;
    /** torch.optim.AdamW's default weight decay, which DeepSpeed's {@code torch_adam} uses when none is given. */
    private static final double TORCH_ADAMW_WEIGHT_DECAY = 0.01;
    /** DeepSpeed's WarmupLR defaults. */
    private static final double DS_WARMUP_MAX_LR = 1e-3;
    private static final long DS_WARMUP_NUM_STEPS = 1000;
    private static final double DS_COS_MIN_RATIO = 1e-4;

    private final String source;
    private final String description;
    private final JsonNode root;

    // what reading found, independent of the flags
    private final List<String> refusals = new ArrayList<>();
    private final List<String> ignored = new ArrayList<>();
    private final List<String> unknown = new ArrayList<>();
    private int zeroStage;
    /** CPU or NONE when the config says so, null when it says nothing. */
    private OffloadOptimizer offloadOptimizer;
    private OffloadParam offloadParam;
    private boolean cpuCheckpointing;
    private JsonNode bf16;
    private JsonNode fp16;
    private JsonNode microBatch;
    private JsonNode accumulation;
    private JsonNode trainBatch;
    private JsonNode gradientClipping;
    private boolean hasOptimizer;
    private String optimizerType;
    private boolean torchAdam;
    private JsonNode lr;
    private JsonNode betas;
    private JsonNode eps;
    private JsonNode weightDecay;
    private String schedulerType;
    private LrSchedulerType schedule;
    private JsonNode warmupMinLr;
    private JsonNode warmupMaxLr;
    private JsonNode warmupMinRatio;
    private JsonNode cosMinRatio;
    private JsonNode warmupNumSteps;
    private JsonNode warmupType;
    private JsonNode totalNumSteps;

    private DeepSpeedConfig(String source, String description, JsonNode root) {
        this.source = source;
        this.description = description;
        this.root = root;
        read();
    }

    // ---- reading ----------------------------------------------------------------------------------------------------

    /**
     * Reads {@code --deepspeed}'s value as HF does: the path of a JSON file; else inline JSON (text starting with
     * {@code {}, as TrainingArguments parses its dict fields from the command line, strings "true"/"false" and digit
     * strings converted as there); else base64 of the JSON (accelerate's HfDeepSpeedConfig).
     *
     * @throws ArgsException when it is none of them, or not a JSON object
     */
    public static DeepSpeedConfig read(String value) {
        return read(value, "");
    }

    /** As {@link #read(String)}; {@code where} follows the value in messages: " (config file x.json)" or "". */
    static DeepSpeedConfig read(String value, String where) {
        String text = value.strip();
        String named = Flag.DEEPSPEED.cli() + " " + ArgsParser.shown(value) + where;
        Path file = null;
        try {
            file = Path.of(text);
        } catch (InvalidPathException e) {
            // not a path: inline or base64
        }
        if (file != null && Files.isDirectory(file)) {
            throw new ArgsException(named + " is a directory: a DeepSpeed config is a JSON file");
        }
        if (file != null && Files.isRegularFile(file)) {
            String json;
            try {
                json = Files.readString(file, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new ArgsException(named + " cannot be read: " + e.getMessage());
            }
            return new DeepSpeedConfig(value, "deepspeed config " + value, object(json, named));
        }
        if (text.startsWith("{")) {
            ObjectNode inline = object(text, Flag.DEEPSPEED.cli() + "'s inline JSON" + where);
            convertStrings(inline);
            return new DeepSpeedConfig(value, "inline deepspeed config", inline);
        }
        String decoded = base64(text);
        if (decoded != null && decoded.strip().startsWith("{")) {
            return new DeepSpeedConfig(value, "base64 deepspeed config",
                    object(decoded, Flag.DEEPSPEED.cli() + "'s base64 JSON" + where));
        }
        throw new ArgsException(named + " is no file, nor inline JSON ({...}), nor base64 of a JSON object");
    }

    private static ObjectNode object(String json, String named) {
        JsonNode node;
        try {
            node = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new ArgsException(named + " is not valid JSON: " + e.getOriginalMessage());
        }
        if (!(node instanceof ObjectNode o)) {
            throw new ArgsException(named + " is not a JSON object");
        }
        return o;
    }

    private static String base64(String text) {
        for (Base64.Decoder d : List.of(Base64.getUrlDecoder(), Base64.getDecoder())) {
            try {
                return new String(d.decode(text), StandardCharsets.UTF_8);
            } catch (IllegalArgumentException e) {
                // the other alphabet, or not base64
            }
        }
        return null;
    }

    /** TrainingArguments' {@code _convert_str_dict}: a command line's "true", "false" and digit strings become values. */
    private static void convertStrings(ObjectNode node) {
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            JsonNode v = e.getValue();
            if (v instanceof ObjectNode o) {
                convertStrings(o);
            } else if (v.isTextual()) {
                String s = v.asText();
                if (s.equalsIgnoreCase("true") || s.equalsIgnoreCase("false")) {
                    node.put(e.getKey(), s.equalsIgnoreCase("true"));
                } else if (!s.isEmpty() && s.chars().allMatch(Character::isDigit)) {
                    node.set(e.getKey(), JsonNodeFactory.instance.numberNode(new java.math.BigInteger(s)));
                } else if (s.matches("\\d*\\.\\d*") && s.length() > 1) {
                    node.put(e.getKey(), Double.parseDouble(s));
                }
            }
        }
    }

    /** The keys of one JSON object, consumed as they are read; what is left over is unknown. */
    private final class Section {
        private final String prefix;
        private final JsonNode node;
        private final Set<String> seen = new HashSet<>();

        Section(String prefix, JsonNode node) {
            this.prefix = prefix;
            this.node = node;
        }

        /** The value, or null when absent. */
        JsonNode get(String key) {
            seen.add(key);
            JsonNode v = node.get(key);
            return v == null || v.isNull() ? null : v;
        }

        /** A nested object, or null when absent (a non-object is a refusal). */
        Section section(String key) {
            JsonNode v = get(key);
            if (v == null) {
                return null;
            }
            if (!v.isObject()) {
                refusals.add(path(key) + " (" + description + ") must be a JSON object");
                return null;
            }
            return new Section(path(key) + ".", v);
        }

        /** These keys mean nothing for jtune: listed in the warning. */
        void ignore(String... keys) {
            ignore(k -> List.of(keys).contains(k));
        }

        void ignore(Predicate<String> which) {
            for (String k : names()) {
                if (!seen.contains(k) && which.test(k)) {
                    seen.add(k);
                    ignored.add(path(k));
                }
            }
        }

        /** Every key not read or ignored: unknown to jtune. */
        void rest() {
            for (String k : names()) {
                if (!seen.contains(k)) {
                    unknown.add(path(k));
                }
            }
        }

        String path(String key) {
            return prefix + key;
        }

        private List<String> names() {
            List<String> n = new ArrayList<>();
            node.fieldNames().forEachRemaining(n::add);
            return n;
        }
    }

    private void read() {
        Section top = new Section("", root);
        microBatch = top.get("train_micro_batch_size_per_gpu");
        accumulation = top.get("gradient_accumulation_steps");
        trainBatch = top.get("train_batch_size");
        gradientClipping = top.get("gradient_clipping");
        readPrecision(top);
        readZero(top.section("zero_optimization"));
        readOptimizer(top.section("optimizer"));
        readScheduler(top.section("scheduler"));
        Section checkpointing = top.section("activation_checkpointing");
        if (checkpointing != null) {
            JsonNode cpu = checkpointing.get("cpu_checkpointing");
            cpuCheckpointing = cpu != null && cpu.asBoolean(false);
            checkpointing.ignore("partition_activations", "contiguous_memory_optimization", "number_checkpoints",
                    "synchronize_checkpoint_boundary", "profile");
            checkpointing.rest();
        }
        // DeepSpeed's own engine, logging and multi-GPU communication
        top.ignore("aio", "steps_per_print", "wall_clock_breakdown", "dump_state", "prescale_gradients",
                "gradient_predivide_factor", "communication_data_type", "seq_parallel_communication_data_type",
                "zero_allow_untested_optimizer", "zero_force_ds_cpu_optimizer", "sparse_gradients", "memory_breakdown",
                "disable_allgather", "fp32_allreduce", "flops_profiler", "comms_logger", "tensorboard", "wandb",
                "csv_monitor", "comet", "checkpoint");
        top.rest();
    }

    private void readPrecision(Section top) {
        Section b = top.section("bf16");
        if (b == null) {
            b = top.section("bfloat16"); // DeepSpeed's older spelling
        }
        if (b != null) {
            bf16 = b.get("enabled");
            b.rest();
        }
        Section f = top.section("fp16");
        if (f != null) {
            fp16 = f.get("enabled");
            f.ignore("loss_scale", "loss_scale_window", "initial_scale_power", "hysteresis", "consecutive_hysteresis",
                    "min_loss_scale", "auto_cast", "fp16_master_weights_and_grads");
            f.rest();
        }
        Section amp = top.section("amp");
        if (amp != null) {
            JsonNode enabled = amp.get("enabled");
            if (enabled != null && enabled.asBoolean(false)) {
                refusals.add("amp.enabled true (" + description + ") asks for apex's fp16 mixed precision, which jtune refuses: "
                        + Flag.FP16.reason());
            }
            amp.ignore(k -> true);
        }
    }

    private void readZero(Section zero) {
        if (zero == null) {
            return;
        }
        JsonNode stage = zero.get("stage");
        if (stage != null) {
            if (stage.isIntegralNumber() && stage.asInt() >= 0 && stage.asInt() <= 3) {
                zeroStage = stage.asInt();
            } else {
                refusals.add(zero.path("stage") + " " + show(stage) + " (" + description + ") must be 0, 1, 2 or 3");
            }
        }
        Section opt = zero.section("offload_optimizer");
        if (opt != null) {
            String d = offloadDevice(opt, "optimizer");
            offloadOptimizer = d == null ? null : d.equals("cpu") ? OffloadOptimizer.CPU : OffloadOptimizer.NONE;
            JsonNode pin = opt.get("pin_memory");
            if (pin != null && !pin.asBoolean(true)) {
                ignored.add(opt.path("pin_memory") + " false (jtune always pins the host state)");
            }
            JsonNode ratio = opt.get("ratio");
            if (ratio != null && ratio.asDouble(1) != 1.0) {
                refusals.add(opt.path("ratio") + " " + show(ratio) + " (" + description + ") offloads part of the optimizer,"
                        + " which is not built: jtune offloads all of it (ratio 1)");
            }
            opt.ignore("buffer_count", "fast_init", "nvme_path", "pipeline", "pipeline_read", "pipeline_write");
            opt.rest();
        }
        Section param = zero.section("offload_param");
        if (param != null) {
            String d = offloadDevice(param, "param");
            offloadParam = d == null ? null : d.equals("cpu") ? OffloadParam.CPU : OffloadParam.NONE;
            param.ignore("pin_memory", "buffer_count", "buffer_size", "max_in_cpu", "nvme_path");
            param.rest();
        }
        // DeepSpeed's first spelling of optimizer offload
        JsonNode legacy = zero.get("cpu_offload");
        if (legacy != null && legacy.asBoolean(false)) {
            offloadOptimizer = OffloadOptimizer.CPU;
        }
        JsonNode legacyParams = zero.get("cpu_offload_params");
        if (legacyParams != null && legacyParams.asBoolean(false)) {
            offloadParam = OffloadParam.CPU;
        }
        zero.ignore("cpu_offload_use_pin_memory");
        if (offloadParam == OffloadParam.CPU && zeroStage != 3) {
            refusals.add("zero_optimization.offload_param (" + description + ") needs zero_optimization.stage 3, got " + zeroStage
                    + (stage == null ? " (absent: DeepSpeed's default)" : "") + ": DeepSpeed offloads parameters only under ZeRO-3");
        }
        if (offloadOptimizer == OffloadOptimizer.CPU && zeroStage == 0) {
            refusals.add("zero_optimization.offload_optimizer (" + description + ") needs zero_optimization.stage 1, 2 or 3,"
                    + " got " + zeroStage + (stage == null ? " (absent: DeepSpeed's default)" : "")
                    + ": DeepSpeed offloads only through ZeRO; on one GPU the stage changes nothing else");
        }
        zero.ignore("overlap_comm", "contiguous_gradients", "sub_group_size", "reduce_bucket_size", "allgather_partitions",
                "allgather_bucket_size", "reduce_scatter", "round_robin_gradients", "elastic_checkpoint",
                "load_from_fp32_weights", "ignore_unused_parameters", "legacy_stage1", "use_multi_rank_bucket_allreduce",
                "zero_hpz_partition_size", "zero_quantized_weights", "zero_quantized_nontrainable_weights",
                "zero_quantized_gradients", "mics_shard_size", "mics_hierarchical_params_gather", "memory_efficient_linear",
                "pipeline_loading_checkpoint", "override_module_apply", "log_trace_cache_warnings",
                "gather_16bit_weights_on_model_save", "module_granularity_threshold");
        zero.ignore(k -> k.startsWith("stage3_"));
        zero.rest();
    }

    /** An offload block's device: "none" or "cpu"; null (refused) for nvme or anything else. */
    private String offloadDevice(Section block, String what) {
        JsonNode device = block.get("device");
        String d = device == null ? "none" : device.asText().toLowerCase(Locale.ROOT);
        String at = block.path("device") + " " + d + " (" + description + ")";
        switch (d) {
            case "none", "cpu" -> {
                return d;
            }
            case "nvme" -> refusals.add(at + " is refused: NVMe offload is not built; \"cpu\" keeps the "
                    + (what.equals("param") ? "weights" : "optimizer state") + " in pinned host memory");
            default -> refusals.add(at + " is not a DeepSpeed offload device: none, cpu or nvme");
        }
        return null;
    }

    private void readOptimizer(Section opt) {
        if (opt == null) {
            return;
        }
        hasOptimizer = true;
        JsonNode type = opt.get("type");
        optimizerType = type == null ? null : type.asText();
        Section params = opt.section("params");
        String t = optimizerType == null ? "" : optimizerType.toLowerCase(Locale.ROOT);
        if (!t.equals("adamw") && !t.equals("adam")) {
            refusals.add("optimizer.type " + (type == null ? "(absent)" : show(type)) + " (" + description + ") is refused: "
                    + "jtune's optimizer is AdamW (type AdamW, or Adam in DeepSpeed's default AdamW mode); DeepSpeed's other"
                    + " optimizers (OneBitAdam, Lamb, Lion, Adagrad...) are not built");
            if (params != null) {
                params.ignore(k -> true);
            }
            opt.rest();
            return;
        }
        if (params != null) {
            lr = params.get("lr");
            betas = params.get("betas");
            eps = params.get("eps");
            weightDecay = params.get("weight_decay");
            JsonNode torch = params.get("torch_adam");
            torchAdam = torch != null && torch.asBoolean(false);
            JsonNode wMode = params.get("adam_w_mode");
            // DeepSpeed: type AdamW is always decoupled; Adam is unless adam_w_mode is false
            if (t.equals("adam") && wMode != null && !wMode.asBoolean(true)) {
                refusals.add("optimizer.params.adam_w_mode false (" + description + ") asks for Adam with L2 regularisation,"
                        + " which is not built: jtune's AdamW decouples weight decay (adam_w_mode true, DeepSpeed's default)");
            }
            JsonNode ams = params.get("amsgrad");
            if (ams != null && ams.asBoolean(false)) {
                refusals.add("optimizer.params.amsgrad true (" + description + ") is refused: AMSGrad is not built");
            }
            JsonNode bias = params.get("bias_correction");
            if (bias != null && !bias.asBoolean(true)) {
                refusals.add("optimizer.params.bias_correction false (" + description + ") is refused: jtune's AdamW always"
                        + " corrects the moments' bias, as torch's");
            }
            params.rest();
        }
        opt.rest();
    }

    private void readScheduler(Section sched) {
        if (sched == null) {
            return;
        }
        JsonNode type = sched.get("type");
        schedulerType = type == null ? "(absent)" : type.asText();
        schedule = switch (schedulerType) {
            case "WarmupLR" -> LrSchedulerType.CONSTANT_WITH_WARMUP;
            case "WarmupDecayLR" -> LrSchedulerType.LINEAR;
            case "WarmupCosineLR" -> LrSchedulerType.COSINE;
            default -> null;
        };
        Section params = sched.section("params");
        if (schedule == null) {
            refusals.add("scheduler.type " + schedulerType + " (" + description + ") has no jtune equivalent: jtune has HF's"
                    + " schedules (WarmupDecayLR = linear, WarmupLR = constant_with_warmup, WarmupCosineLR = cosine);"
                    + " remove the scheduler block and choose --lr_scheduler_type");
            if (params != null) {
                params.ignore(k -> true);
            }
            sched.rest();
            return;
        }
        if (params != null) {
            warmupNumSteps = params.get("warmup_num_steps");
            warmupType = params.get("warmup_type");
            if (schedule == LrSchedulerType.COSINE) {
                warmupMinRatio = params.get("warmup_min_ratio");
                cosMinRatio = params.get("cos_min_ratio");
            } else {
                warmupMinLr = params.get("warmup_min_lr");
                warmupMaxLr = params.get("warmup_max_lr");
            }
            if (schedule != LrSchedulerType.CONSTANT_WITH_WARMUP) {
                totalNumSteps = params.get("total_num_steps");
            }
            params.ignore("last_batch_iteration"); // jtune resumes from its own checkpoints
            params.rest();
        }
        sched.rest();
    }

    // ---- what it says -------------------------------------------------------------------------------------------------

    /** The value as given to {@code --deepspeed}: a path, inline JSON or base64. */
    public String source() {
        return source;
    }

    /** How messages name it: {@code deepspeed config zero2.json}, {@code inline deepspeed config}... */
    public String description() {
        return description;
    }

    /** {@code zero_optimization.stage} (DeepSpeed's default 0). On one GPU it decides only whether offload is possible. */
    public int zeroStage() {
        return zeroStage;
    }

    /** What {@code zero_optimization.offload_optimizer.device} (or the old {@code cpu_offload}) asks for; NONE if nothing. */
    public OffloadOptimizer offloadOptimizer() {
        return offloadOptimizer == null ? OffloadOptimizer.NONE : offloadOptimizer;
    }

    /** What {@code zero_optimization.offload_param.device} (or the old {@code cpu_offload_params}) asks for; NONE if nothing. */
    public OffloadParam offloadParam() {
        return offloadParam == null ? OffloadParam.NONE : offloadParam;
    }

    /** The keys listed as meaning nothing for jtune on one GPU, as dotted paths. */
    public List<String> ignoredKeys() {
        return List.copyOf(ignored);
    }

    /** The keys jtune does not know, as dotted paths. */
    public List<String> unknownKeys() {
        return List.copyOf(unknown);
    }

    // ---- against the flags ------------------------------------------------------------------------------------------

    /**
     * Checks this config against the resolved flag values and sets the flags it decides (the optimizer offload, the
     * schedule). {@code given} names where each flag given by the user came from (command line, a config file, a
     * preset); a flag not in it has its default. Problems and warnings are added to the lists. Returns the flags this
     * config decides: those it sets (offload, schedule), the optimizer its block stands for, and those a value other
     * than "auto" pins (bf16, batch sizes, accumulation, clipping, optimizer parameters): for the memory planner,
     * these count as set by the user.
     */
    Set<Flag> apply(Map<Flag, Object> values, Map<Flag, String> given, List<String> problems, List<String> warnings) {
        Check check = new Check(values, given, problems);
        check.run();
        List<String> parts = new ArrayList<>();
        if (!ignored.isEmpty()) {
            parts.add("ignored, with no meaning for jtune on one GPU: " + String.join(", ", ignored));
        }
        if (cpuCheckpointing) {
            parts.add("activation_checkpointing.cpu_checkpointing true is ignored too: HF's Trainer never applies DeepSpeed's"
                    + " activation checkpointing (--gradient_checkpointing is torch's), so it offloads no activations"
                    + " there either (jtune's is --offload_activations)");
        }
        if (check.checkpointingForParams) {
            parts.add("zero_optimization.offload_param.device cpu turns on " + Flag.GRADIENT_CHECKPOINTING.cli() + ", which was"
                    + " not given: jtune's parameter offload copies each layer back to the GPU for its recomputation in backward");
        }
        if (!unknown.isEmpty()) {
            parts.add("not DeepSpeed keys jtune knows, ignored: " + String.join(", ", unknown));
        }
        if (!parts.isEmpty()) {
            warnings.add(Flag.DEEPSPEED.cli() + " (" + description + "): " + String.join("; ", parts));
        }
        String note = scheduleNote(values);
        if (note != null) {
            warnings.add(note);
        }
        return check.decided;
    }

    /** The comparisons, with the flags at hand. */
    private final class Check {
        private final Map<Flag, Object> values;
        private final Map<Flag, String> given;
        private final List<String> problems;
        /** The flags this config decides (see {@link #apply}). */
        private final Set<Flag> decided = EnumSet.noneOf(Flag.class);
        /** Parameter offload turned gradient checkpointing on (it was not given). */
        private boolean checkpointingForParams;

        Check(Map<Flag, Object> values, Map<Flag, String> given, List<String> problems) {
            this.values = values;
            this.given = given;
            this.problems = problems;
        }

        void run() {
            problems.addAll(refusals);
            bool("bf16.enabled", bf16, Flag.BF16);
            if (fp16 != null && !isAuto(fp16) && fp16.asBoolean(false)) {
                problems.add("fp16.enabled true (" + description + ") asks for fp16, which jtune refuses: " + Flag.FP16.reason()
                        + "; set bf16.enabled instead");
            } else if (fp16 != null && !isAuto(fp16) && !fp16.isBoolean()) {
                problems.add("fp16.enabled " + show(fp16) + " (" + description + ") must be true, false or \"auto\"");
            }
            number("train_micro_batch_size_per_gpu", microBatch, Flag.PER_DEVICE_TRAIN_BATCH_SIZE, null);
            number("gradient_accumulation_steps", accumulation, Flag.GRADIENT_ACCUMULATION_STEPS, null);
            trainBatch();
            number("gradient_clipping", gradientClipping, Flag.MAX_GRAD_NORM, 0.0);
            offload();
            optimizer();
            scheduler();
        }

        private void bool(String key, JsonNode ds, Flag flag) {
            if (ds == null || isAuto(ds)) {
                return;
            }
            if (!ds.isBoolean()) {
                problems.add(key + " " + show(ds) + " (" + description + ") must be true, false or \"auto\"");
                return;
            }
            decided.add(flag);
            if (ds.asBoolean() != (Boolean) values.get(flag)) {
                problems.add(conflict(key + " " + ds.asBoolean(), flag, flag.format(values.get(flag))));
            }
        }

        /** A number that must equal a flag's; {@code absent} is DeepSpeed's default when the key is missing, null: unchecked. */
        private void number(String key, JsonNode ds, Flag flag, Double absent) {
            Object v = values.get(flag);
            double flagValue = ((Number) v).doubleValue();
            if (ds == null) {
                if (absent != null && absent != flagValue) {
                    problems.add(conflict(key + " absent, which DeepSpeed reads as " + formatNumber(absent)
                            + (key.equals("gradient_clipping") ? " (no clipping)" : ""), flag, flag.format(v)));
                }
                return;
            }
            if (isAuto(ds)) {
                return;
            }
            if (!ds.isNumber()) {
                problems.add(key + " " + show(ds) + " (" + description + ") must be a number or \"auto\"");
                return;
            }
            decided.add(flag);
            if (ds.asDouble() != flagValue) {
                problems.add(conflict(key + " " + show(ds), flag, flag.format(v)));
            }
        }

        private void trainBatch() {
            if (trainBatch == null || isAuto(trainBatch)) {
                return;
            }
            if (!trainBatch.isNumber()) {
                problems.add("train_batch_size " + show(trainBatch) + " (" + description + ") must be a number or \"auto\"");
                return;
            }
            int micro = (Integer) values.get(Flag.PER_DEVICE_TRAIN_BATCH_SIZE);
            int accumulationSteps = (Integer) values.get(Flag.GRADIENT_ACCUMULATION_STEPS);
            if (trainBatch.asDouble() != (double) micro * accumulationSteps) {
                problems.add("train_batch_size " + show(trainBatch) + " (" + description + ") contradicts " + micro * accumulationSteps
                        + " = " + Flag.PER_DEVICE_TRAIN_BATCH_SIZE.cli() + " " + micro + " (" + source(Flag.PER_DEVICE_TRAIN_BATCH_SIZE)
                        + ") x " + Flag.GRADIENT_ACCUMULATION_STEPS.cli() + " " + accumulationSteps + " ("
                        + source(Flag.GRADIENT_ACCUMULATION_STEPS) + ") x world size 1: make them agree or write \"auto\" in the"
                        + " DeepSpeed config");
            }
        }

        private void offload() {
            boolean paramsSet = offloadParam != null && decideDevice("offload_param", Flag.OFFLOAD_PARAM, offloadParam);
            if (paramsSet && offloadParam == OffloadParam.CPU && !given.containsKey(Flag.GRADIENT_CHECKPOINTING)
                    && !Boolean.TRUE.equals(values.get(Flag.GRADIENT_CHECKPOINTING))) {
                values.put(Flag.GRADIENT_CHECKPOINTING, true); // jtune's parameter offload recomputes each layer
                decided.add(Flag.GRADIENT_CHECKPOINTING);
                checkpointingForParams = true;
            }
            if (offloadOptimizer != null) {
                decideDevice("offload_optimizer", Flag.OFFLOAD_OPTIMIZER, offloadOptimizer);
            }
        }

        /**
         * An offload block's device decides {@code flag}: set when the flag was not given (returns true), a conflict
         * when it was given otherwise.
         */
        private boolean decideDevice(String block, Flag flag, Choice device) {
            decided.add(flag);
            if (!given.containsKey(flag)) {
                values.put(flag, device);
                return true;
            }
            Choice set = (Choice) values.get(flag);
            if (set != device) {
                problems.add("zero_optimization." + block + ".device " + device.flagValue() + " (" + description + ") contradicts "
                        + flag.cli() + " " + set.flagValue() + " (" + given.get(flag) + "): choose one");
            }
            return false;
        }

        private void optimizer() {
            if (!hasOptimizer || optimizerType == null) {
                return;
            }
            String t = optimizerType.toLowerCase(Locale.ROOT);
            if (!t.equals("adamw") && !t.equals("adam")) {
                return; // refused while reading
            }
            decided.add(Flag.OPTIM);
            Optim optim = (Optim) values.get(Flag.OPTIM);
            if (given.containsKey(Flag.OPTIM) && !optim.isFp32DeviceAdamW()) {
                problems.add("optimizer.type " + optimizerType + " (" + description + "), DeepSpeed's fp32 AdamW, contradicts "
                        + Flag.OPTIM.cli() + " " + optim.flagValue() + " (" + given.get(Flag.OPTIM) + "): remove the optimizer"
                        + " block to keep " + Flag.OPTIM.cli() + " " + optim.flagValue() + ", or leave " + Flag.OPTIM.cli() + " out");
            }
            number("optimizer.params.lr", lr, Flag.LEARNING_RATE, DS_LR);
            number("optimizer.params.eps", eps, Flag.ADAM_EPSILON, DS_EPS);
            number("optimizer.params.weight_decay", weightDecay, Flag.WEIGHT_DECAY, torchAdam ? TORCH_ADAMW_WEIGHT_DECAY : 0.0);
            if (betas == null) {
                betaPair(DS_BETA1, DS_BETA2, "optimizer.params.betas absent, which DeepSpeed reads as ["
                        + formatNumber(DS_BETA1) + ", " + formatNumber(DS_BETA2) + "]");
            } else if (!isAuto(betas)) {
                if (!betas.isArray() || betas.size() != 2 || !betas.get(0).isNumber() || !betas.get(1).isNumber()) {
                    problems.add("optimizer.params.betas " + show(betas) + " (" + description + ") must be [beta1, beta2] or \"auto\"");
                } else {
                    decided.add(Flag.ADAM_BETA1);
                    decided.add(Flag.ADAM_BETA2);
                    betaPair(betas.get(0).asDouble(), betas.get(1).asDouble(), "optimizer.params.betas " + show(betas));
                }
            }
        }

        private void betaPair(double b1, double b2, String what) {
            double f1 = (Double) values.get(Flag.ADAM_BETA1);
            double f2 = (Double) values.get(Flag.ADAM_BETA2);
            if (b1 != f1 || b2 != f2) {
                problems.add(what + " (" + description + ") contradicts " + Flag.ADAM_BETA1.cli() + " " + Flag.ADAM_BETA1.format(f1)
                        + " (" + source(Flag.ADAM_BETA1) + ") and " + Flag.ADAM_BETA2.cli() + " " + Flag.ADAM_BETA2.format(f2) + " ("
                        + source(Flag.ADAM_BETA2) + "): make them agree or write \"auto\" in the DeepSpeed config");
            }
        }

        private void scheduler() {
            if (schedule == null) {
                return;
            }
            LrSchedulerType flag = (LrSchedulerType) values.get(Flag.LR_SCHEDULER_TYPE);
            decided.add(Flag.LR_SCHEDULER_TYPE);
            if (!given.containsKey(Flag.LR_SCHEDULER_TYPE)) {
                values.put(Flag.LR_SCHEDULER_TYPE, schedule);
            } else if (flag != schedule) {
                problems.add("scheduler.type " + schedulerType + " (" + description + "), which is " + Flag.LR_SCHEDULER_TYPE.cli()
                        + " " + schedule.flagValue() + ", contradicts " + Flag.LR_SCHEDULER_TYPE.cli() + " " + flag.flagValue() + " ("
                        + given.get(Flag.LR_SCHEDULER_TYPE) + "): remove the scheduler block or the flag");
            }
            if (schedule == LrSchedulerType.COSINE) {
                ratioAtZero("scheduler.params.warmup_min_ratio", warmupMinRatio, "jtune warms up from 0, as HF's schedules");
                if (cosMinRatio != null && !isAuto(cosMinRatio) && cosMinRatio.asDouble(-1) != 0) {
                    problems.add("scheduler.params.cos_min_ratio " + show(cosMinRatio) + " (" + description + ") is refused:"
                            + " jtune's cosine ends at 0, as HF's; write 0");
                }
            } else {
                ratioAtZero("scheduler.params.warmup_min_lr", warmupMinLr, "jtune warms up from 0, as HF's schedules");
                number("scheduler.params.warmup_max_lr", warmupMaxLr, Flag.LEARNING_RATE, DS_WARMUP_MAX_LR);
            }
            warmupSteps();
            totalSteps();
        }

        private void ratioAtZero(String key, JsonNode ds, String why) {
            if (ds != null && !isAuto(ds) && ds.asDouble(-1) != 0) {
                problems.add(key + " " + show(ds) + " (" + description + ") is refused: " + why + "; write 0 or \"auto\"");
            }
        }

        private void warmupSteps() {
            double ratio = (Double) values.get(Flag.WARMUP_RATIO);
            int steps = (Integer) values.get(Flag.WARMUP_STEPS);
            Long numeric = warmupNumSteps == null ? Long.valueOf(DS_WARMUP_NUM_STEPS)
                    : isAuto(warmupNumSteps) ? null : warmupNumSteps.isIntegralNumber() ? warmupNumSteps.asLong() : Long.MIN_VALUE;
            if (numeric != null && numeric == Long.MIN_VALUE) {
                problems.add("scheduler.params.warmup_num_steps " + show(warmupNumSteps) + " (" + description
                        + ") must be a whole number of steps or \"auto\"");
                return;
            }
            String what = warmupNumSteps == null
                    ? "scheduler.params.warmup_num_steps absent, which DeepSpeed reads as " + DS_WARMUP_NUM_STEPS
                    : "scheduler.params.warmup_num_steps " + show(warmupNumSteps);
            // with a ratio the run's warmup is known only with its step count: TrainCommand checks stepConflicts then
            if (numeric != null && ratio == 0 && numeric != steps) {
                problems.add(conflict(what, Flag.WARMUP_STEPS, String.valueOf(steps)));
            }
            boolean warms = numeric != null ? numeric > 0 : steps > 0 || ratio > 0;
            String type = warmupType == null ? "log" : warmupType.asText();
            if (warms && !type.equals("linear")) {
                problems.add("scheduler.params.warmup_type " + (warmupType == null ? "absent, which DeepSpeed reads as log,"
                        : show(warmupType)) + " (" + description + ") is refused: DeepSpeed's log-curve warmup is not built;"
                        + " jtune warms up linearly, as HF's schedules: write \"warmup_type\": \"linear\"");
            }
        }

        private void totalSteps() {
            if (schedule == LrSchedulerType.CONSTANT_WITH_WARMUP) {
                return;
            }
            if (totalNumSteps == null) {
                problems.add("scheduler.params.total_num_steps (" + description + ") is missing: DeepSpeed's " + schedulerType
                        + " needs it; write \"auto\" (the run's step count)");
                return;
            }
            if (isAuto(totalNumSteps)) {
                return;
            }
            if (!totalNumSteps.isIntegralNumber() || totalNumSteps.asLong() <= 0) {
                problems.add("scheduler.params.total_num_steps " + show(totalNumSteps) + " (" + description
                        + ") must be a positive whole number of steps or \"auto\"");
                return;
            }
            int maxSteps = (Integer) values.get(Flag.MAX_STEPS);
            // with epochs the step count depends on the data: TrainCommand checks stepConflicts then
            if (maxSteps > 0 && totalNumSteps.asLong() != maxSteps) {
                problems.add(conflict("scheduler.params.total_num_steps " + show(totalNumSteps), Flag.MAX_STEPS,
                        String.valueOf(maxSteps)));
            }
        }

        private String conflict(String dsSide, Flag flag, String flagValue) {
            return dsSide + " (" + description + ") contradicts " + flag.cli() + " " + flagValue + " (" + source(flag)
                    + "): make them agree or write \"auto\" in the DeepSpeed config";
        }

        private String source(Flag flag) {
            String s = given.get(flag);
            return s != null ? s : "its default; HF's Trainer also holds DeepSpeed values to the defaults";
        }
    }

    /** What DeepSpeed's schedule does that jtune's equivalent does not, when it is too small to refuse; null if nothing. */
    private String scheduleNote(Map<Flag, Object> values) {
        if (schedule == null) {
            return null;
        }
        List<String> notes = new ArrayList<>();
        Long warmup = warmupNumSteps == null ? Long.valueOf(DS_WARMUP_NUM_STEPS)
                : warmupNumSteps.isIntegralNumber() ? Long.valueOf(warmupNumSteps.asLong())
                : (Double) values.get(Flag.WARMUP_RATIO) > 0 ? null // known with the step count only; ceil(ratio x steps) is rarely < 2
                : Long.valueOf((Integer) values.get(Flag.WARMUP_STEPS));
        if (warmup != null && warmup < 2) {
            notes.add("DeepSpeed would warm up over 2 steps (its minimum) where jtune warms up over " + warmup
                    + ", so DeepSpeed's first learning rates are lower");
        }
        if (schedule == LrSchedulerType.COSINE && cosMinRatio == null) {
            notes.add("DeepSpeed's cosine would end at cos_min_ratio 1e-4 of the learning rate (its default), jtune's ends at 0");
        }
        if (notes.isEmpty()) {
            return null;
        }
        return Flag.DEEPSPEED.cli() + " (" + description + "): scheduler " + schedulerType + " runs as "
                + Flag.LR_SCHEDULER_TYPE.cli() + " " + schedule.flagValue() + "; " + String.join("; ", notes);
    }

    /**
     * The checks that need the run's step count, known once the data is loaded: a numeric
     * {@code scheduler.params.total_num_steps} against {@code totalSteps}, a numeric {@code warmup_num_steps} against
     * the run's warmup (HF's Trainer makes the same checks in {@code trainer_config_finalize}). Empty when they agree.
     */
    public List<String> stepConflicts(long totalSteps, long warmupSteps) {
        List<String> p = new ArrayList<>();
        if (schedule == null) {
            return p;
        }
        if (totalNumSteps != null && totalNumSteps.isIntegralNumber() && schedule != LrSchedulerType.CONSTANT_WITH_WARMUP
                && totalNumSteps.asLong() != totalSteps) {
            p.add("scheduler.params.total_num_steps " + totalNumSteps.asLong() + " (" + description + ") contradicts this run's "
                    + totalSteps + " optimizer steps (calculated from the data, the epochs and the batch geometry): write"
                    + " \"auto\" or pass " + Flag.MAX_STEPS.cli() + " " + totalNumSteps.asLong());
        }
        long ds = warmupNumSteps == null ? DS_WARMUP_NUM_STEPS : warmupNumSteps.isIntegralNumber() ? warmupNumSteps.asLong() : -1;
        if (ds >= 0 && ds != warmupSteps) {
            p.add("scheduler.params.warmup_num_steps " + ds + (warmupNumSteps == null ? " (absent: DeepSpeed's default)" : "")
                    + " (" + description + ") contradicts this run's warmup of " + warmupSteps + " steps (calculated from "
                    + Flag.WARMUP_RATIO.cli() + " or " + Flag.WARMUP_STEPS.cli() + "): write \"auto\" or pass "
                    + Flag.WARMUP_STEPS.cli() + " " + ds);
        }
        return p;
    }

    // ---- values -------------------------------------------------------------------------------------------------------

    private static boolean isAuto(JsonNode node) {
        return node.isTextual() && node.asText().equals("auto");
    }

    /** A DeepSpeed value as messages show it: numbers the way the flags print them, strings quoted. */
    private static String show(JsonNode node) {
        if (node.isIntegralNumber()) {
            return node.asText();
        }
        if (node.isNumber()) {
            return formatNumber(node.asDouble());
        }
        if (node.isArray()) {
            List<String> items = new ArrayList<>();
            node.forEach(n -> items.add(show(n)));
            return "[" + String.join(", ", items) + "]";
        }
        return node.toString();
    }

    private static String formatNumber(double d) {
        return d == Math.rint(d) && Math.abs(d) < 1e15 ? String.valueOf((long) d) : ValueType.formatDouble(d);
    }

    @Override
    public String toString() {
        return description;
    }
}
