package dev.jtune.train.args;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

import static dev.jtune.train.args.ValueType.BOOL;
import static dev.jtune.train.args.ValueType.FLOAT;
import static dev.jtune.train.args.ValueType.INT;
import static dev.jtune.train.args.ValueType.NAME_LIST;
import static dev.jtune.train.args.ValueType.PATH;
import static dev.jtune.train.args.ValueType.RESUME;
import static dev.jtune.train.args.ValueType.STRING;

/**
 * The table of jtune's trainer flags: the one place a flag is named. Parsing, defaults, --help, config files,
 * presets, {@link TrainArgs#describe()} and the JSON of saved arguments all read it.
 *
 * <p>A flag's name is its constant's name in lower case ({@code LEARNING_RATE} is {@code --learning_rate}), as HF
 * TrainingArguments and the Gemma3-Finetune (LLaVA-style) scripts spell it. An implemented flag is a {@link TrainArgs} component of the same
 * name in camel case ({@code learningRate}). Recognised but not implemented flags are either {@link Support#IGNORED}
 * (accepted with a warning: they have no meaning for jtune) or {@link Support#REFUSED} (an error saying what jtune does
 * instead, except for the values that ask for what jtune does anyway, like {@code --fp16 False}).
 */
public enum Flag {
    // ---- model ----
    MODEL_ID(Spec.of(Group.MODEL, STRING, null,
            "HF model name (google/gemma-3-270m), found offline in the HF cache; or a local directory")
            .alias("model_name_or_path")),
    MODEL_PATH(Spec.of(Group.MODEL, PATH, null,
            "a local HF checkpoint directory (config.json, *.safetensors, tokenizer.json); wins over --model_id")),
    CACHE_DIR(Spec.of(Group.MODEL, PATH, null,
            "the HF hub cache to find --model_id in; none: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub")),

    // ---- data ----
    DATA_PATH(Spec.of(Group.DATA, PATH, null, "training data: a JSON or JSONL file of conversations").mustBeGiven()),
    EVAL_DATA_PATH(Spec.of(Group.DATA, PATH, null, "evaluation data, in the same format")),
    EVAL_RATIO(Spec.of(Group.DATA, FLOAT, 0.0, "fraction of --data_path held out for evaluation, in [0, 1)")
            .check(Checks.range(0, true, 1, false))),
    MAX_SEQ_LENGTH(Spec.of(Group.DATA, INT, 2048, "longest sequence in tokens; longer records are truncated")
            .alias("model_max_length").check(Checks.atLeast(2))),
    PACKING(Spec.of(Group.DATA, BOOL, false,
            "pack whole conversations into rows of up to --max_seq_length tokens (TRL's packing; first-fit decreasing): each"
                    + " sample keeps its own positions (from 0) and attends only to itself, so the loss and gradients are those"
                    + " of the samples run apart, with little padding")),
    GROUP_BY_LENGTH(Spec.of(Group.DATA, BOOL, true,
            "group micro-batches by length (HF's group_by_length: shuffled, then mega-batches of 50 sorted longest first)"
                    + " so padding stays small; false: HF's random order, seeded by --seed")),
    LAZY_PREPROCESS(Spec.of(Group.DATA, BOOL, false,
            "tokenize records on background threads while the file is read (same examples; all are still tokenized before training)")),
    SKIP_BAD_RECORDS(Spec.of(Group.DATA, BOOL, false,
            "skip (and count) records that fail validation instead of stopping at the first")),
    DATALOADER_NUM_WORKERS(Spec.of(Group.DATA, INT, 0,
            "threads that tokenize records with --lazy_preprocess (0: one); without it, ignored (with a warning)").check(Checks.atLeast(0))),
    IMAGE_FOLDER(Spec.of(Group.DATA, PATH, null,
            "where the records' image files are named from (LLaVA \"image\" fields, messages' image parts); default: the"
                    + " data file's folder. Image records need a Gemma 3 image-text checkpoint (4B and larger)")),
    MAX_NUM_FRAMES(Spec.ignored(Group.DATA, INT, "video input is not built (images are)")),

    // ---- training ----
    OUTPUT_DIR(Spec.of(Group.TRAINING, PATH, Path.of("trainer_output"), "where checkpoints, logs and the adapter go")),
    PER_DEVICE_TRAIN_BATCH_SIZE(Spec.of(Group.TRAINING, INT, 8, "sequences per micro-batch in training")
            .check(Checks.atLeast(1))),
    PER_DEVICE_EVAL_BATCH_SIZE(Spec.of(Group.TRAINING, INT, 8, "sequences per batch in evaluation")
            .check(Checks.atLeast(1))),
    GRADIENT_ACCUMULATION_STEPS(Spec.of(Group.TRAINING, INT, 1,
            "micro-batches per optimizer step (the loss is normalized over all their label tokens)")
            .check(Checks.atLeast(1))),
    NUM_TRAIN_EPOCHS(Spec.of(Group.TRAINING, FLOAT, 3.0, "passes over the data (fractional allowed); --max_steps wins")),
    MAX_STEPS(Spec.of(Group.TRAINING, INT, -1, "optimizer steps to run if > 0 (overrides --num_train_epochs)")),
    FREEZE_LLM(Spec.of(Group.TRAINING, BOOL, false,
            "freeze the language model's weights (required with --lora_enable; without it, an image-text model's tower and projector train)")),
    GRADIENT_CHECKPOINTING(Spec.of(Group.TRAINING, BOOL, false,
            "keep only each layer's input and recompute the rest in backward: less memory, ~30% more compute")),
    CHECKPOINTING_GRANULARITY(Spec.of(Group.TRAINING, ValueType.choice(CheckpointGranularity.class, v -> null),
            CheckpointGranularity.LAYER, "what --gradient_checkpointing keeps: each layer's input (layer), or the input of each "
                    + "layer's attention and MLP halves (half: twice the kept tensors, half the recomputed peak; for long sequences)")),
    KEEP_ATTENTION(Spec.of(Group.TRAINING, ValueType.choice(KeepAttention.class, v -> null), KeepAttention.GLOBAL,
            "with --gradient_checkpointing: which layers' attention output the forward keeps for backward, whose recomputation"
                    + " then skips their attention: global (the full-causal layers, whose attention is quadratic in the"
                    + " sequence; 16 MiB a layer for Gemma 3 270M at 8K tokens), all, or none (HF's recomputation)")),
    OFFLOAD_ACTIVATIONS(Spec.of(Group.TRAINING, BOOL, false,
            "with --gradient_checkpointing: the kept layer inputs wait for backward in pinned host memory (copied out after"
                    + " each layer's forward, prefetched back one layer ahead in backward): less GPU memory, the same result")),
    GRADIENT_CHECKPOINTING_KWARGS(Spec.of(Group.TRAINING, ValueType.STRING, "",
            "JSON options of --gradient_checkpointing: {\"offload\": true} is --offload_activations; \"use_reentrant\" is"
                    + " accepted and has no effect (jtune's recomputation is not reentrant)")),
    TILED_MLP(Spec.of(Group.TRAINING, BOOL, false,
            "each layer's MLP half over tiles of tokens (Arctic's TiledMLP, axolotl's tiled_mlp): each tile computed alone in"
                    + " forward and recomputed and differentiated alone in backward, so the [tokens, intermediate] activations"
                    + " exist for one tile at a time; the same loss, the MLP's parameter gradients summed tile by tile. It"
                    + " recomputes the MLP half (what --checkpointing_granularity half does anyway)")),
    TILED_MLP_NUM_SHARDS(Spec.of(Group.TRAINING, INT, 0,
            "with --tiled_mlp: tiles per micro-batch; 0: as many as keep one tile's [tokens, intermediate] activation within"
                    + " 256 MiB").check(Checks.atLeast(0))),
    BF16(Spec.of(Group.TRAINING, BOOL, false,
            "bf16 weights and activations (fp32 accumulation) on a GPU; otherwise fp32 (the cpu runs fp32, with a warning)")),
    FP16(Spec.refused(Group.TRAINING, BOOL,
            "Gemma 3 overflows fp16 (embeddings scaled by sqrt(hidden), large post-norm weights); use --bf16")
            .harmless(false)),
    SEED(Spec.of(Group.TRAINING, INT, 42, "random seed: LoRA init, dropout, shuffling, the eval split")),
    MAX_NONFINITE_STEPS(Spec.of(Group.TRAINING, INT, 3,
            "a step whose loss or gradient norm is NaN/Inf applies no update; this many in a row stop the run (exit 1)")
            .check(Checks.atLeast(1))),
    EVAL_STRATEGY(Spec.of(Group.TRAINING, ValueType.choice(IntervalStrategy.class, v -> null), IntervalStrategy.NO,
            "when to evaluate: no, every --eval_steps, or each epoch").alias("evaluation_strategy")),
    EVAL_STEPS(Spec.of(Group.TRAINING, INT, null, "evaluate every N steps with --eval_strategy steps; none: every --logging_steps")
            .check(Checks.atLeast(1))),
    FREEZE_VISION_TOWER(Spec.of(Group.TRAINING, BOOL, false,
            "image-text models: freeze the SigLIP vision tower (else it trains in full; with --lora_enable it must be frozen)")),
    FREEZE_PROJECTOR(Spec.of(Group.TRAINING, BOOL, false,
            "image-text models: freeze the multimodal projector (else it trains in full; with --lora_enable it must be frozen)")),
    DO_TRAIN(Spec.ignored(Group.TRAINING, BOOL, "jtune always trains")),
    DO_EVAL(Spec.ignored(Group.TRAINING, BOOL, "evaluation follows --eval_strategy")),

    // ---- optimizer ----
    OPTIM(Spec.of(Group.OPTIMIZER, ValueType.choice(Optim.class, Checks::optimRefusal), Optim.ADAMW_TORCH,
            "optimizer, by HF's names. adamw_torch, adamw_torch_fused, adamw_hf: AdamW with fp32 state on the device;"
                    + " adamw_bnb_8bit (alias adamw_8bit): bitsandbytes' blockwise 8-bit AdamW (both moments uint8 in blocks"
                    + " of 256 with an fp32 absmax each; tensors under 4096 elements keep fp32); paged_adamw_8bit,"
                    + " paged_adamw_32bit: that 8-bit or fp32 state in pinned host memory the GPU maps (no device memory for"
                    + " it, bus traffic every step); sgd. With bf16 weights an fp32 master copy is kept besides")),
    LEARNING_RATE(Spec.of(Group.OPTIMIZER, FLOAT, 5e-5, "peak learning rate").check(Checks.atLeastD(0))),
    WEIGHT_DECAY(Spec.of(Group.OPTIMIZER, FLOAT, 0.0, "AdamW's decoupled weight decay").check(Checks.atLeastD(0))),
    ADAM_BETA1(Spec.of(Group.OPTIMIZER, FLOAT, 0.9, "AdamW's beta1").check(Checks.range(0, true, 1, false))),
    ADAM_BETA2(Spec.of(Group.OPTIMIZER, FLOAT, 0.999, "AdamW's beta2").check(Checks.range(0, true, 1, false))),
    ADAM_EPSILON(Spec.of(Group.OPTIMIZER, FLOAT, 1e-8, "AdamW's epsilon").check(Checks.range(0, false, Double.MAX_VALUE, true))),
    MAX_GRAD_NORM(Spec.of(Group.OPTIMIZER, FLOAT, 1.0, "clip the global gradient norm to this (0: no clipping)")
            .check(Checks.atLeastD(0))),
    LR_SCHEDULER_TYPE(Spec.of(Group.OPTIMIZER, ValueType.choice(LrSchedulerType.class, Checks::schedulerRefusal),
            LrSchedulerType.LINEAR, "learning-rate schedule after warmup")),
    WARMUP_RATIO(Spec.of(Group.OPTIMIZER, FLOAT, 0.0, "linear warmup over this fraction of the steps, in [0, 1]")
            .check(Checks.range(0, true, 1, true))),
    WARMUP_STEPS(Spec.of(Group.OPTIMIZER, INT, 0, "linear warmup over this many steps").check(Checks.atLeast(0))),
    OFFLOAD_OPTIMIZER(Spec.of(Group.OPTIMIZER, ValueType.choice(OffloadOptimizer.class,
            v -> v.equals("nvme") ? "NVMe offload is not built; cpu keeps the state in pinned host memory" : null),
            OffloadOptimizer.NONE, "none: the optimizer state stays where --optim puts it; cpu: host-offloaded AdamW"
                    + " (ZeRO-Offload on one GPU): the fp32 master weights and both moments (8-bit with an 8-bit --optim) in"
                    + " pinned host memory, gradients streamed to the host as backward produces them, the update on every"
                    + " core, the updated weights streamed back before the next forward (a --deepspeed config's"
                    + " offload_optimizer says the same)")),
    OFFLOAD_PARAM(Spec.of(Group.OPTIMIZER, ValueType.choice(OffloadParam.class,
            v -> v.equals("nvme") ? "NVMe offload is not built; cpu keeps the weights in pinned host memory" : null),
            OffloadParam.NONE, "none: the weights stay on the GPU; cpu: every decoder layer's weights (bf16 or NF4) live in"
                    + " pinned host memory and are copied to the GPU one layer ahead of their use in forward and in the"
                    + " recomputation before backward (ZeRO-3 parameter offload on one GPU): the GPU holds two layers. Needs"
                    + " --gradient_checkpointing; a full fine-tune needs --offload_optimizer cpu too (the host optimizer updates"
                    + " the host weights). The embedding (the LM head) stays on the GPU (a --deepspeed config's offload_param"
                    + " says the same). Beside data parallel with ZeRO stage 3, each GPU's host memory keeps its 1/N part of the"
                    + " layers' frozen weights, gathered from there")),
    DELAYED_OPTIMIZER_STEP(Spec.of(Group.OPTIMIZER, BOOL, false,
            "with --offload_optimizer cpu: the host update of step i overlaps the GPU's step i+1 (ZeRO-Offload's"
                    + " one-step delayed update). Changes the arithmetic: step i+1's forward and backward use weights"
                    + " without step i's update, so the loss curve differs from an ordinary run")),
    VISION_LR(Spec.of(Group.OPTIMIZER, FLOAT, null,
            "learning rate of the vision tower's parameters (names containing vision_tower) when it trains"
                    + " (--freeze_vision_tower False), scheduled as --learning_rate is; none: --learning_rate").check(Checks.atLeastD(0))),
    PROJECTOR_LR(Spec.of(Group.OPTIMIZER, FLOAT, null,
            "learning rate of the projector's parameters (names containing multi_modal_projector) when it trains"
                    + " (--freeze_projector False), scheduled as --learning_rate is; none: --learning_rate").check(Checks.atLeastD(0))),

    // ---- LoRA and quantization ----
    LORA_ENABLE(Spec.of(Group.LORA, BOOL, false, "train LoRA adapters on the frozen model (needs --freeze_llm)")),
    LORA_RANK(Spec.of(Group.LORA, INT, 64, "LoRA rank r").check(Checks.atLeast(1))),
    LORA_ALPHA(Spec.of(Group.LORA, INT, 16, "LoRA alpha: the update is scaled by alpha / r").check(Checks.atLeast(1))),
    LORA_DROPOUT(Spec.of(Group.LORA, FLOAT, 0.05, "dropout on the adapters' input, in [0, 1)")
            .check(Checks.range(0, true, 1, false))),
    LORA_NAMESPAN_EXCLUDE(Spec.of(Group.LORA, NAME_LIST, List.of("lm_head", "embed_tokens"),
            "modules whose name contains one of these get no adapter: \"['lm_head','embed_tokens']\" or a,b")),
    NUM_LORA_MODULES(Spec.of(Group.LORA, INT, -1, "adapt only the last N matching modules (-1: all)")
            .check(v -> (Integer) v == -1 || (Integer) v >= 1 ? null : "must be -1 (all) or at least 1")),
    BITS(Spec.of(Group.LORA, ValueType.intChoice(List.of(16, 4), Map.of(8,
            "8-bit weights (bitsandbytes LLM.int8) are not built; use --bits 4 (NF4) or 16")), 16,
            "precision of the frozen base weights: 16 (bf16) or 4 (NF4, QLoRA; needs --lora_enable)")),
    DOUBLE_QUANT(Spec.of(Group.LORA, BOOL, true, "with --bits 4: quantize the absmax scales too (8-bit, block 256)")),
    QUANT_TYPE(Spec.of(Group.LORA, ValueType.choice(QuantType.class,
            v -> v.equals("fp4") ? "FP4 is not built; nf4 is (QLoRA's NormalFloat, better for normally distributed weights)" : null),
            QuantType.NF4, "4-bit format with --bits 4")),
    USE_DORA(Spec.refused(Group.LORA, BOOL, "DoRA is not built yet; use LoRA (--lora_enable)").harmless(false)),
    VISION_LORA(Spec.of(Group.LORA, BOOL, false,
            "LoRA on the frozen vision tower too (its linear modules: q/k/v/out_proj, fc1, fc2), beside the language model's;"
                    + " needs --lora_enable and --freeze_vision_tower True (an image-text checkpoint). peft's Embedding LoRA on"
                    + " the tower's position_embedding is not built")),
    LORA_BIAS(Spec.refused(Group.LORA, STRING, "only 'none' is built (Gemma 3's linear layers have no bias)")
            .harmless("none")),
    LORA_WEIGHT_PATH(Spec.of(Group.LORA, ValueType.OPTIONAL_PATH, null,
            "start from this peft adapter (adapter_config.json + adapter_model.safetensors): its rank, alpha and targets must match the LoRA flags")),

    // ---- checkpoints and logging ----
    SAVE_STRATEGY(Spec.of(Group.CHECKPOINTS, ValueType.choice(IntervalStrategy.class,
            v -> v.equals("best") ? "saving the best checkpoint needs metric_for_best_model, which is not built yet" : null),
            IntervalStrategy.STEPS, "when to save a checkpoint-N: every --save_steps, each epoch, or no")),
    SAVE_STEPS(Spec.of(Group.CHECKPOINTS, INT, 500, "save every N optimizer steps with --save_strategy steps")),
    SAVE_TOTAL_LIMIT(Spec.of(Group.CHECKPOINTS, INT, null, "keep only the newest N checkpoints (none: keep all)")
            .check(Checks.atLeast(1))),
    RESUME_FROM_CHECKPOINT(Spec.of(Group.CHECKPOINTS, RESUME, Resume.AUTO,
            "auto: continue this run from the newest checkpoint in output_dir, if any; latest (or true): that, which must exist; "
                    + "a checkpoint dir; false: a fresh start (refused where output_dir holds a run)")),
    SAVE_ONLY_MODEL(Spec.of(Group.CHECKPOINTS, BOOL, false,
            "checkpoints hold the trained weights only, not the optimizer's state (much smaller for full fine-tuning); "
                    + "training cannot continue from them")),
    OVERWRITE_OUTPUT_DIR(Spec.of(Group.CHECKPOINTS, BOOL, false,
            "start afresh: first remove what jtune wrote in output_dir (checkpoints, metrics, report, adapter or model files), nothing else")),
    LOGGING_STEPS(Spec.of(Group.CHECKPOINTS, INT, 500, "log loss, learning rate and throughput every N steps")
            .check(Checks.atLeast(1))),
    REPORT_TO(Spec.of(Group.CHECKPOINTS, ValueType.REPORT_TO, List.of(ReportTarget.JSONL, ReportTarget.HTML),
            "metrics files in output_dir besides the console: jsonl (metrics.jsonl), html (report.html), all, none")),

    // ---- system ----
    DEVICE(Spec.of(Group.SYSTEM, ValueType.DEVICE, "auto", "where to train: auto (the first GPU, else the cpu), cpu, cuda, cuda:N")),
    MAX_MEMORY(Spec.of(Group.SYSTEM, ValueType.MEMORY_SIZE, null,
            "the device memory a run may use: bytes, or KB/MB/GB/TB (powers of 1000: 16GB = 16e9 bytes) or KiB/MiB/GiB/TiB"
                    + " (powers of 1024). The memory planner chooses the fastest configuration whose predicted step fits it"
                    + " among what was left open (gradient checkpointing, optimizer offload), or refuses saying what would fit;"
                    + " a run on a GPU caps its allocator at it (going over is an out-of-memory error naming the categories)."
                    + " None: the GPU's free memory at the start (no budget on the cpu)")),
    PRESET(Spec.of(Group.SYSTEM, ValueType.choice(Preset.class, v -> null), null,
            "a named set of flag values (below); --config and the command line override it")),
    CONFIG(Spec.of(Group.SYSTEM, PATH, null,
            "a JSON file of flag -> value with these names (saved args work too); the command line overrides it")),
    HELP(Spec.action(Group.SYSTEM, "print this help and exit")),
    DEEPSPEED(Spec.of(Group.SYSTEM, ValueType.DEEPSPEED, null,
            "a DeepSpeed config, as HF takes it: a JSON file, inline JSON ({...}) or base64 JSON. On one GPU the ZeRO"
                    + " stage (0-3) partitions nothing and decides only offload: offload_optimizer cpu (stage 1-3) is"
                    + " --offload_optimizer cpu; beside data parallel (--nproc_per_node) stage 1 shards AdamW's state (fp32 or"
                    + " 8-bit; fp32 on the host) over the ranks, stage 2 the gradients too, stage 3 the layers' weights too (a full fine-tune's, QLoRA's base;"
                    + " with --gradient_checkpointing, each layer gathered as it is reached; the embedding and adapters stay whole). \"auto\" takes the flag's value; bf16, fp16, batch sizes, accumulation,"
                    + " gradient_clipping and the optimizer's lr/betas/eps/weight_decay must otherwise equal the flags',"
                    + " defaults included (HF's Trainer checks the same); an optimizer block (AdamW) stands for --optim when"
                    + " that is not given; a scheduler block sets --lr_scheduler_type (WarmupDecayLR linear, WarmupLR"
                    + " constant_with_warmup, WarmupCosineLR cosine). offload_param and nvme are refused; keys with no"
                    + " meaning on one GPU are listed in one warning")),
    NPROC_PER_NODE(Spec.of(Group.SYSTEM, INT, 1,
            "data parallel (torchrun's name): start this many worker processes on this machine, one per GPU (worker"
                    + " LOCAL_RANK trains on cuda:LOCAL_RANK), each logging to output_dir/logs/rank-R.log; 1: this process"
                    + " trains. A process started with torchrun's variables (RANK, WORLD_SIZE, ...) is a worker itself")
            .check(Checks.atLeast(1))),
    NNODES(Spec.of(Group.SYSTEM, INT, 1, "machines in a data-parallel run (torchrun's); each starts --nproc_per_node workers")
            .check(Checks.atLeast(1))),
    NODE_RANK(Spec.of(Group.SYSTEM, INT, 0, "this machine's number among --nnodes, from 0 (torchrun's)").check(Checks.atLeast(0))),
    MASTER_ADDR(Spec.of(Group.SYSTEM, STRING, null,
            "the address of node 0, where rank 0 waits for the other ranks (torchrun's); none: 127.0.0.1 (one machine)")),
    MASTER_PORT(Spec.of(Group.SYSTEM, INT, 29500, "the TCP port rank 0 listens at for the other ranks (torchrun's)")
            .check(Checks.between(1, 65535))),
    DDP_TIMEOUT(Spec.of(Group.SYSTEM, INT, 1800,
            "seconds the rendezvous and any collective may wait for the other ranks before the run stops with an error"
                    + " naming the rank and operation (HF's name)").check(Checks.atLeast(1))),
    DDP_BUCKET_CAP_MB(Spec.of(Group.SYSTEM, INT, 25,
            "data parallel: the gradients are summed over the ranks in buckets of at most this many MiB (HF's and torch DDP's"
                    + " name): pieces of the flat gradient buffers, so fewer, larger all-reduces").check(Checks.atLeast(1))),
    TF32(Spec.ignored(Group.SYSTEM, BOOL, "jtune's fp32 matmuls run in full fp32, never TF32; bf16 training is unaffected")),
    USE_LIGER(Spec.ignored(Group.SYSTEM, BOOL,
            "jtune's fused kernels (RMSNorm, GeGLU, RoPE, chunked linear cross-entropy) are always on")),
    DISABLE_FLASH_ATTN2(Spec.ignored(Group.SYSTEM, BOOL,
            "jtune has its own attention kernels (causal, sliding window); there is no FlashAttention 2 to switch"));

    /** How --help groups the flags, in this order. */
    public enum Group {
        MODEL("Model"),
        DATA("Data"),
        TRAINING("Training"),
        OPTIMIZER("Optimizer and schedule"),
        LORA("LoRA and quantization"),
        CHECKPOINTS("Checkpoints and logging"),
        SYSTEM("System");

        private final String title;

        Group(String title) {
            this.title = title;
        }

        public String title() {
            return title;
        }
    }

    /** Whether a flag does something in jtune. */
    public enum Support {
        /** A setting of {@link TrainArgs}. */
        IMPLEMENTED,
        /** Accepted for compatibility with the Gemma3-Finetune scripts, with a warning saying why it means nothing here. */
        IGNORED,
        /** An error saying what jtune does instead, except for {@link Flag#harmlessValues()}. */
        REFUSED,
        /** {@code --help}: no value, not a setting. */
        ACTION
    }

    private final Spec spec;
    private final String name;

    Flag(Spec spec) {
        this.spec = spec;
        this.name = name().toLowerCase(Locale.ROOT);
    }

    /** The flag's name without dashes, as HF spells it: {@code learning_rate}. */
    public String flagName() {
        return name;
    }

    /** {@code --learning_rate}. */
    public String cli() {
        return "--" + name;
    }

    public List<String> aliases() {
        return spec.aliases;
    }

    public Group group() {
        return spec.group;
    }

    public Support support() {
        return spec.support;
    }

    /** The default value, typed as the TrainArgs component (boxed); null where the default is "none". */
    public Object defaultValue() {
        return spec.defaultValue;
    }

    public String help() {
        return spec.help;
    }

    /** Whether a run needs this flag (its default is none). */
    public boolean required() {
        return spec.required;
    }

    /** For IGNORED and REFUSED flags: why, and what jtune does instead. */
    public String reason() {
        return spec.reason;
    }

    /** For REFUSED flags: the values accepted anyway because they ask for what jtune does (fp16 = false). */
    public List<Object> harmlessValues() {
        return spec.harmless;
    }

    /** Whether the flag is a bare switch ({@code --bf16} alone means true). */
    public boolean isBoolean() {
        return spec.type == BOOL;
    }

    /** The TrainArgs component's name: {@code learning_rate} -> {@code learningRate}. */
    public String componentName() {
        StringBuilder sb = new StringBuilder();
        boolean upper = false;
        for (char c : name.toCharArray()) {
            if (c == '_') {
                upper = true;
            } else {
                sb.append(upper ? Character.toUpperCase(c) : c);
                upper = false;
            }
        }
        return sb.toString();
    }

    ValueType<?> type() {
        return spec.type;
    }

    /** How --help names the value's type. */
    public String typeLabel() {
        return spec.support == Support.ACTION ? "" : spec.type.label();
    }

    /** Parses a value given as text; throws {@link ValueType.BadValue} with the reason. */
    Object parse(String raw) {
        return spec.type.parse(raw);
    }

    /** The value as the flag would spell it: parses back to an equal value. */
    public String format(Object value) {
        return spec.type.format(value);
    }

    Object toJson(Object value) {
        return spec.type.toJson(value);
    }

    /** Null if the value is in range, else why not ("must be at least 1"). */
    String check(Object value) {
        return value == null || spec.check == null ? null : spec.check.apply(value);
    }

    /** Whether "none" (or JSON null) unsets the flag: its default is none and the value is not free text. */
    boolean nullable() {
        return spec.defaultValue == null && spec.support == Support.IMPLEMENTED;
    }

    boolean textual() {
        return spec.type.textual();
    }

    private static final Map<String, Flag> BY_NAME;

    static {
        Map<String, Flag> m = new LinkedHashMap<>();
        for (Flag f : values()) {
            for (String n : f.names()) {
                if (m.put(n, f) != null) {
                    throw new ExceptionInInitializerError("flag name " + n + " is used twice");
                }
            }
        }
        BY_NAME = Collections.unmodifiableMap(m);
    }

    /** The name and the aliases. */
    public List<String> names() {
        List<String> n = new ArrayList<>();
        n.add(name);
        n.addAll(spec.aliases);
        return n;
    }

    /** The flag of a name or alias (without dashes), or null. */
    public static Flag byName(String name) {
        return BY_NAME.get(name);
    }

    /** Every name and alias, in table order. */
    public static List<String> allNames() {
        return List.copyOf(BY_NAME.keySet());
    }

    /** The implemented flags, in table order: the components of {@link TrainArgs}. */
    public static List<Flag> implemented() {
        List<Flag> l = new ArrayList<>();
        for (Flag f : values()) {
            if (f.support() == Support.IMPLEMENTED) {
                l.add(f);
            }
        }
        return l;
    }

    /** One row of the table. Built fluently, so each row reads as one expression. */
    private record Spec(Group group, ValueType<?> type, Object defaultValue, String help, List<String> aliases,
                        Support support, String reason, List<Object> harmless, Function<Object, String> check,
                        boolean required) {
        static Spec of(Group group, ValueType<?> type, Object defaultValue, String help) {
            return new Spec(group, type, defaultValue, help, List.of(), Support.IMPLEMENTED, null, List.of(), null, false);
        }

        static Spec ignored(Group group, ValueType<?> type, String reason) {
            return new Spec(group, type, null, "ignored: " + reason, List.of(), Support.IGNORED, reason, List.of(), null, false);
        }

        static Spec refused(Group group, ValueType<?> type, String reason) {
            return new Spec(group, type, null, "refused: " + reason, List.of(), Support.REFUSED, reason, List.of(), null, false);
        }

        static Spec action(Group group, String help) {
            return new Spec(group, BOOL, null, help, List.of(), Support.ACTION, null, List.of(), null, false);
        }

        Spec alias(String alias) {
            List<String> a = new ArrayList<>(aliases);
            a.add(alias);
            return new Spec(group, type, defaultValue, help, List.copyOf(a), support, reason, harmless, check, required);
        }

        Spec harmless(Object value) {
            List<Object> h = new ArrayList<>(harmless);
            h.add(value);
            return new Spec(group, type, defaultValue, help, aliases, support, reason, List.copyOf(h), check, required);
        }

        Spec check(Function<Object, String> c) {
            return new Spec(group, type, defaultValue, help, aliases, support, reason, harmless, c, required);
        }

        Spec mustBeGiven() {
            return new Spec(group, type, defaultValue, help, aliases, support, reason, harmless, check, true);
        }
    }

    /** Range checks and the reasons for refused values of implemented flags. */
    static final class Checks {
        private Checks() {
        }

        static Function<Object, String> atLeast(int min) {
            return v -> (Integer) v >= min ? null : "must be at least " + min;
        }

        static Function<Object, String> between(int min, int max) {
            return v -> v == null || ((Integer) v >= min && (Integer) v <= max) ? null : "must be from " + min + " to " + max;
        }

        static Function<Object, String> atLeastD(double min) {
            return v -> (Double) v >= min ? null : "must be at least " + bound(min);
        }

        static Function<Object, String> range(double lo, boolean loClosed, double hi, boolean hiClosed) {
            String text = (loClosed ? "[" : "(") + bound(lo) + ", " + (hi == Double.MAX_VALUE ? "inf" : bound(hi))
                    + (hiClosed ? "]" : ")");
            return v -> {
                double d = (Double) v;
                boolean ok = (loClosed ? d >= lo : d > lo) && (hiClosed ? d <= hi : d < hi);
                return ok ? null : "must be in " + text;
            };
        }

        private static String bound(double d) {
            return d == Math.rint(d) && Math.abs(d) < 1e15 ? String.valueOf((long) d) : ValueType.formatDouble(d);
        }

        static String optimRefusal(String v) {
            if (v.equals("adamw_torch_4bit") || v.equals("adamw_torch_8bit")) {
                return "torchao's low-bit AdamW is not built; adamw_bnb_8bit is bitsandbytes' 8-bit AdamW";
            }
            if (v.contains("8bit") || v.contains("32bit") || v.startsWith("paged_") || v.equals("rmsprop_bnb")) {
                return "HF's " + v + " is not built; jtune's bitsandbytes optimizers are adamw_bnb_8bit (adamw_8bit),"
                        + " paged_adamw_8bit and paged_adamw_32bit";
            }
            if (v.startsWith("adamw") || v.startsWith("adafactor") || v.startsWith("lion") || v.startsWith("galore")
                    || v.startsWith("schedule_free") || v.equals("rmsprop") || v.startsWith("lomo") || v.startsWith("adalomo")
                    || v.startsWith("grokadamw") || v.startsWith("ademamix") || v.startsWith("apollo") || v.equals("stable_adamw")) {
                return "HF's " + v + " is not built in jtune; use adamw_torch (AdamW), adamw_bnb_8bit (8-bit AdamW) or sgd";
            }
            return null;
        }

        static String schedulerRefusal(String v) {
            return switch (v) {
                case "cosine_with_restarts", "polynomial", "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr",
                     "cosine_warmup_with_min_lr", "warmup_stable_decay" ->
                        "HF's " + v + " schedule is not built yet; jtune has linear, cosine, constant, constant_with_warmup";
                default -> null;
            };
        }
    }
}
