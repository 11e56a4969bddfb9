package dev.jtune.train.loop;

import dev.jtune.engine.ops.KeptAttention;
import dev.jtune.gemma.model.Gemma3Model;

/**
 * What the training loop needs, independent of how it was asked for (flags, a config file, or code embedding
 * jtune); build one with {@link #builder()}, which starts from HF's defaults. Steps are optimizer steps; {@code maxSteps > 0} overrides {@code epochs}. {@code maxNonfiniteSteps}: steps in a
 * row whose loss or gradient norm may be non-finite (their updates skipped) before the run stops.
 */
public record TrainerConfig(
        double epochs,
        long maxSteps,
        int batchSize,
        int gradientAccumulation,
        double learningRate,
        LrSchedule.Type schedule,
        double warmupRatio,
        long warmupSteps,
        double weightDecay,
        double beta1,
        double beta2,
        double epsilon,
        double maxGradNorm,
        Gemma3Model.Checkpointing checkpointing,
        Gemma3Model.MlpTiling mlpTiling,
        KeptAttention keptAttention,
        long loggingSteps,
        SaveStrategy saveStrategy,
        long saveSteps,
        int saveTotalLimit,
        SaveStrategy evalStrategy,
        long evalSteps,
        long seed,
        boolean metricsFile,
        boolean htmlReport,
        int evalBatchSize,
        int maxNonfiniteSteps,
        OptimizerStatePrecision optimizerStatePrecision,
        OptimizerStatePlacement optimizerStatePlacement,
        OptimizerStepTiming optimizerStepTiming,
        ActivationPlacement activationPlacement,
        WeightPlacement weightPlacement,
        Batching batching,
        CheckpointContents checkpointContents,
        java.util.List<GroupLearningRate> groupLearningRates,
        int worldSize,
        long ddpBucketBytes,
        OptimizerSharding optimizerSharding) {

    /** What data-parallel ranks shard of the optimizer (DeepSpeed's ZeRO stages); one process shards nothing. */
    public enum OptimizerSharding {
        /** Every rank holds the whole optimizer state (plain data parallel, ZeRO stage 0). */
        NONE,
        /**
         * ZeRO stage 1: each rank holds 1/N of AdamW's moments and master copy and updates that shard of the
         * parameters, which an all-gather then gives every rank ({@code optim.ShardedAdamW}); gradients and weights stay
         * whole. Needs AdamW's fp32 state: on the device, paged (host-mapped), or on the host stepped by its cores
         * (ZeRO-Offload's {@code --offload_optimizer cpu}, in step).
         */
        STATE,
        /**
         * ZeRO stage 2: the state as in {@link #STATE}, and the gradients too: backward adds into transient buckets
         * that are reduce-scattered as they complete, each rank keeping the summed gradient of its parts only
         * ({@code dist.ShardedGradients}); weights stay whole. The same needs as {@link #STATE}.
         */
        GRADIENTS,
        /**
         * ZeRO stage 3: as {@link #GRADIENTS}, and the layers' weights sharded too (QLoRA's NF4 base, frozen dense
         * weights and norms; a full fine-tune's trained layer weights, whose parts the optimizer keeps beside their
         * gradient and state parts), each rank keeping one part of every layer's and all-gathering a layer as
         * computation reaches it, the next one as it goes ({@code dist.ShardedWeights}). LoRA's adapters, the
         * embedding and the final norm stay whole on every rank. Needs gradient checkpointing (a layer's gathered
         * weights leave after its forward).
         */
        PARAMETERS;

        /** Whether the optimizer state is sharded over the ranks (stages 1 to 3). */
        public boolean shardsState() {
            return this != NONE;
        }

        /** Whether the gradients are sharded over the ranks (stages 2 and 3). */
        public boolean shardsGradients() {
            return this == GRADIENTS || this == PARAMETERS;
        }

        /** DeepSpeed's number for it: 0 to 3. */
        public int zeroStage() {
            return ordinal();
        }
    }

    /**
     * A learning rate of its own for the trained parameters whose (HF) name contains {@code nameContains}, scheduled as
     * the main one is (its peak over the main peak is the ratio every step): Gemma3-Finetune's {@code --vision_lr}
     * ({@code vision_tower}) and {@code --projector_lr} ({@code multi_modal_projector}). The first rule that matches a
     * name wins.
     */
    public record GroupLearningRate(String nameContains, double learningRate) {
        public GroupLearningRate {
            if (nameContains == null || nameContains.isEmpty()) {
                throw new IllegalArgumentException("a group learning rate needs a name part to match");
            }
            if (!(learningRate >= 0) || Double.isInfinite(learningRate)) {
                throw new IllegalArgumentException("the learning rate of " + nameContains + " must be finite and at least 0, got " + learningRate);
            }
        }
    }

    public enum SaveStrategy { NO, STEPS, EPOCH }

    /**
     * What a checkpoint holds: the trained weights with the optimizer's state (a run resumes from it), or the weights
     * alone (HF's {@code --save_only_model}: far smaller for full fine-tuning, 31 GB of optimizer state at 4B, but training
     * cannot continue from it).
     */
    public enum CheckpointContents { MODEL_AND_STATE, MODEL_ONLY }

    /**
     * Where the decoder layers' weights live between uses: the device, or pinned host memory (weight offload,
     * {@code --offload_param cpu}: each layer copied to the device one layer ahead of its forward and recomputation;
     * needs checkpointing, and for trained weights the host-offloaded optimizer).
     */
    public enum WeightPlacement { DEVICE, HOST }

    /**
     * Where checkpointed layer inputs wait for backward: device memory, or pinned host memory (activation offload,
     * HF's {@code gradient_checkpointing_kwargs={"offload": true}}: copied out after each layer's forward, prefetched
     * back one layer ahead in backward; needs checkpointing).
     */
    public enum ActivationPlacement { DEVICE, HOST }

    /**
     * How the optimizer stores its moments, whatever engine optimizer implements it. With 16-bit weights an fp32 master
     * copy is kept either way; it is not part of this choice.
     */
    public enum OptimizerStatePrecision {
        /** fp32 moments (torch's AdamW): 8 bytes per trained parameter. */
        FP32,
        /**
         * bitsandbytes' blockwise 8-bit AdamW state: both moments uint8 in blocks of 256 with an fp32 absmax each (the first
         * moment on the signed dynamic map, the second on the unsigned one); tensors under 4096 elements keep fp32 state.
         */
        BLOCKWISE_8BIT
    }

    /** Where the optimizer state lives, and so where its update runs. */
    public enum OptimizerStatePlacement {
        /** Device memory; the update runs on the device. */
        DEVICE,
        /**
         * Pinned host memory mapped into the device's address space (bitsandbytes' paged optimizers, without managed
         * memory): the device's update kernel reads and writes it across the bus, so it costs no device memory.
         */
        PAGED_HOST,
        /**
         * Pinned host memory, with the fp32 master weights (ZeRO-Offload on one GPU): gradients stream to the host as
         * backward produces them, the update runs on the host's cores, the updated weights stream back before the next
         * forward.
         */
        HOST
    }

    /** When a step's update reaches the weights. */
    public enum OptimizerStepTiming {
        /** Before the next step's forward: an ordinary optimizer's arithmetic. */
        IMMEDIATE,
        /**
         * ZeRO-Offload's one-step delayed update, {@link OptimizerStatePlacement#HOST} only: step i's host update overlaps
         * the device's step i+1, whose forward and backward use weights without step i's update. Changes the arithmetic.
         */
        DELAYED_ONE_STEP
    }

    public TrainerConfig {
        java.util.Objects.requireNonNull(optimizerSharding, "optimizerSharding");
        if (optimizerSharding.shardsState() && optimizerStatePlacement == OptimizerStatePlacement.HOST
                && optimizerStatePrecision != OptimizerStatePrecision.FP32) {
            throw new IllegalArgumentException("sharding the optimizer state over the ranks (ZeRO stage " + optimizerSharding.zeroStage() + ") is built for AdamW's"
                    + " fp32 or 8-bit state on the device or paged, and its fp32 state on the host, not for " + optimizerStatePrecision
                    + " state " + optimizerStatePlacement + " (on the host use --optim adamw_torch, or no ZeRO stage)");
        }
        if (ddpBucketBytes <= 0) {
            throw new IllegalArgumentException("the gradient bucket for the ranks' sums must hold at least a byte, got " + ddpBucketBytes);
        }
        if (worldSize <= 0) {
            throw new IllegalArgumentException("the world size (data-parallel ranks) must be at least 1, got " + worldSize);
        }
        if (batchSize <= 0 || gradientAccumulation <= 0 || evalBatchSize <= 0) {
            throw new IllegalArgumentException("batch size and gradient accumulation must be positive");
        }
        java.util.Objects.requireNonNull(checkpointing, "checkpointing");
        java.util.Objects.requireNonNull(mlpTiling, "mlpTiling");
        java.util.Objects.requireNonNull(keptAttention, "keptAttention");
        if (maxNonfiniteSteps < 1) {
            throw new IllegalArgumentException("maxNonfiniteSteps must be at least 1, got " + maxNonfiniteSteps);
        }
        if (maxSteps <= 0 && !(epochs > 0)) {
            throw new IllegalArgumentException("either maxSteps or epochs must be positive");
        }
        java.util.Objects.requireNonNull(optimizerStatePrecision, "optimizerStatePrecision");
        java.util.Objects.requireNonNull(optimizerStatePlacement, "optimizerStatePlacement");
        java.util.Objects.requireNonNull(optimizerStepTiming, "optimizerStepTiming");
        if (optimizerStepTiming == OptimizerStepTiming.DELAYED_ONE_STEP && optimizerStatePlacement != OptimizerStatePlacement.HOST) {
            throw new IllegalArgumentException("a delayed optimizer step overlaps a host update: it needs HOST placement, got "
                    + optimizerStatePlacement);
        }
        java.util.Objects.requireNonNull(activationPlacement, "activationPlacement");
        if (activationPlacement == ActivationPlacement.HOST && checkpointing == Gemma3Model.Checkpointing.NONE) {
            throw new IllegalArgumentException("activation offload moves checkpointed layer inputs to the host: it needs "
                    + "gradient checkpointing (--gradient_checkpointing)");
        }
        java.util.Objects.requireNonNull(weightPlacement, "weightPlacement");
        java.util.Objects.requireNonNull(batching, "batching");
        java.util.Objects.requireNonNull(checkpointContents, "checkpointContents");
        groupLearningRates = java.util.List.copyOf(groupLearningRates);
        if (!(learningRate > 0) && groupLearningRates.stream().anyMatch(g -> g.learningRate() > 0)) {
            throw new IllegalArgumentException("a group learning rate is scheduled as a multiple of the main one: with a learning"
                    + " rate of " + learningRate + " it cannot be " + groupLearningRates);
        }
        if (weightPlacement == WeightPlacement.HOST && checkpointing == Gemma3Model.Checkpointing.NONE) {
            throw new IllegalArgumentException("weight offload copies each layer back for its recomputation: it needs "
                    + "gradient checkpointing (--gradient_checkpointing)");
        }
        if (optimizerSharding == OptimizerSharding.PARAMETERS && checkpointing == Gemma3Model.Checkpointing.NONE) {
            throw new IllegalArgumentException("ZeRO stage 3 gathers each layer's weights again for its recomputation: it needs "
                    + "gradient checkpointing (--gradient_checkpointing)");
        }
    }

    /** The defaults: HF TrainingArguments' where they exist (see {@link Builder}). */
    public static TrainerConfig defaults() {
        return builder().build();
    }

    /**
     * Why data parallel (a world of more than one) runs with the optimizer on the host only under a ZeRO stage: the one
     * wording of the refusals in the flags, the command and the trainer.
     */
    public static final String HOST_OPTIMIZER_NOT_WITH_DATA_PARALLEL = "data parallel with the optimizer on the host needs a ZeRO"
            + " stage (a --deepspeed config's zero_optimization.stage 1 to 3, AdamW's fp32 state): each rank then"
            + " keeps and steps its part of the state on its host; without one, the gradients would leave the device during"
            + " backward, before the ranks could sum them";

    /** A builder starting from the defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder starting from this configuration. */
    public Builder toBuilder() {
        return new Builder(this);
    }

    /**
     * Builds a {@link TrainerConfig} by name. Starts from HF TrainingArguments' defaults: 3 epochs, no step limit,
     * batch 8 (eval 8), no accumulation, learning rate 5e-5 with a linear schedule and no warm-up, no weight decay,
     * AdamW betas 0.9/0.999 and epsilon 1e-8, gradient norm clipped at 1.0, logging and saving every 500 steps,
     * every checkpoint kept, no evaluation (every 500 steps when on), seed 42; and jtune's own: no recomputation
     * checkpointing, the MLP half untiled, metrics.jsonl and report.html written, a run stops after 3 non-finite steps in a row; fp32
     * optimizer state on the device, updated before the next step (torch's AdamW); one example per row, grouped by
     * length (HF's group_by_length, which jtune turns on by default).
     */
    public static final class Builder {
        private double epochs = 3;
        private long maxSteps = -1;
        private int batchSize = 8;
        private int gradientAccumulation = 1;
        private double learningRate = 5e-5;
        private LrSchedule.Type schedule = LrSchedule.Type.LINEAR;
        private double warmupRatio;
        private long warmupSteps;
        private double weightDecay;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double epsilon = 1e-8;
        private double maxGradNorm = 1.0;
        private Gemma3Model.Checkpointing checkpointing = Gemma3Model.Checkpointing.NONE;
        private Gemma3Model.MlpTiling mlpTiling = Gemma3Model.MlpTiling.NONE;
        private KeptAttention keptAttention = KeptAttention.GLOBAL;
        private long loggingSteps = 500;
        private SaveStrategy saveStrategy = SaveStrategy.STEPS;
        private long saveSteps = 500;
        private int saveTotalLimit;
        private SaveStrategy evalStrategy = SaveStrategy.NO;
        private long evalSteps = 500;
        private long seed = 42;
        private boolean metricsFile = true;
        private boolean htmlReport = true;
        private int evalBatchSize = 8;
        private int maxNonfiniteSteps = 3;
        private OptimizerStatePrecision optimizerStatePrecision = OptimizerStatePrecision.FP32;
        private OptimizerStatePlacement optimizerStatePlacement = OptimizerStatePlacement.DEVICE;
        private OptimizerStepTiming optimizerStepTiming = OptimizerStepTiming.IMMEDIATE;
        private ActivationPlacement activationPlacement = ActivationPlacement.DEVICE;
        private WeightPlacement weightPlacement = WeightPlacement.DEVICE;
        private Batching batching = Batching.DEFAULT;
        private CheckpointContents checkpointContents = CheckpointContents.MODEL_AND_STATE;
        private java.util.List<GroupLearningRate> groupLearningRates = java.util.List.of();
        private int worldSize = 1;
        private long ddpBucketBytes = 25L << 20;
        private OptimizerSharding optimizerSharding = OptimizerSharding.NONE;

        private Builder() {
        }

        private Builder(TrainerConfig c) {
            epochs = c.epochs;
            maxSteps = c.maxSteps;
            batchSize = c.batchSize;
            gradientAccumulation = c.gradientAccumulation;
            learningRate = c.learningRate;
            schedule = c.schedule;
            warmupRatio = c.warmupRatio;
            warmupSteps = c.warmupSteps;
            weightDecay = c.weightDecay;
            beta1 = c.beta1;
            beta2 = c.beta2;
            epsilon = c.epsilon;
            maxGradNorm = c.maxGradNorm;
            checkpointing = c.checkpointing;
            mlpTiling = c.mlpTiling;
            keptAttention = c.keptAttention;
            loggingSteps = c.loggingSteps;
            saveStrategy = c.saveStrategy;
            saveSteps = c.saveSteps;
            saveTotalLimit = c.saveTotalLimit;
            evalStrategy = c.evalStrategy;
            evalSteps = c.evalSteps;
            seed = c.seed;
            metricsFile = c.metricsFile;
            htmlReport = c.htmlReport;
            evalBatchSize = c.evalBatchSize;
            maxNonfiniteSteps = c.maxNonfiniteSteps;
            optimizerStatePrecision = c.optimizerStatePrecision;
            optimizerStatePlacement = c.optimizerStatePlacement;
            optimizerStepTiming = c.optimizerStepTiming;
            activationPlacement = c.activationPlacement;
            weightPlacement = c.weightPlacement;
            batching = c.batching;
            checkpointContents = c.checkpointContents;
            groupLearningRates = c.groupLearningRates;
            worldSize = c.worldSize;
            ddpBucketBytes = c.ddpBucketBytes;
            optimizerSharding = c.optimizerSharding;
        }

        /** Passes over the data ({@code --num_train_epochs}); {@link #maxSteps} overrides it when positive. */
        public Builder epochs(double v) {
            epochs = v;
            return this;
        }

        /** Optimizer steps to run; -1 (or 0): as many as {@link #epochs} takes. */
        public Builder maxSteps(long v) {
            maxSteps = v;
            return this;
        }

        /** Sequences per micro-batch. */
        public Builder batchSize(int v) {
            batchSize = v;
            return this;
        }

        /** Micro-batches per optimizer step. */
        public Builder gradientAccumulation(int v) {
            gradientAccumulation = v;
            return this;
        }

        public Builder learningRate(double v) {
            learningRate = v;
            return this;
        }

        public Builder schedule(LrSchedule.Type v) {
            schedule = v;
            return this;
        }

        /** Warm-up as a fraction of the steps; {@link #warmupSteps} wins when positive. */
        public Builder warmupRatio(double v) {
            warmupRatio = v;
            return this;
        }

        public Builder warmupSteps(long v) {
            warmupSteps = v;
            return this;
        }

        public Builder weightDecay(double v) {
            weightDecay = v;
            return this;
        }

        /** AdamW's betas. */
        public Builder betas(double b1, double b2) {
            beta1 = b1;
            beta2 = b2;
            return this;
        }

        public Builder epsilon(double v) {
            epsilon = v;
            return this;
        }

        /** The global gradient norm to clip at; 0: measured, not clipped. */
        public Builder maxGradNorm(double v) {
            maxGradNorm = v;
            return this;
        }

        public Builder checkpointing(Gemma3Model.Checkpointing v) {
            checkpointing = v;
            return this;
        }

        /** The MLP half whole or over tiles of tokens (default: whole). */
        /**
         * Which layers' attention output checkpointing keeps for the recomputation (default {@link KeptAttention#GLOBAL}:
         * the full-causal layers; {@code --keep_attention}).
         */
        public Builder keptAttention(KeptAttention v) {
            keptAttention = v;
            return this;
        }

        public Builder mlpTiling(Gemma3Model.MlpTiling v) {
            mlpTiling = v;
            return this;
        }

        public Builder loggingSteps(long v) {
            loggingSteps = v;
            return this;
        }

        /** When checkpoints are written: {@code steps} every {@code everySteps} steps, at each epoch's end, or never. */
        public Builder save(SaveStrategy strategy, long everySteps) {
            saveStrategy = strategy;
            saveSteps = everySteps;
            return this;
        }

        /** Checkpoints kept (the oldest go first); 0 keeps all. */
        public Builder saveTotalLimit(int v) {
            saveTotalLimit = v;
            return this;
        }

        /** When the evaluation set is scored: like {@link #save}. */
        public Builder eval(SaveStrategy strategy, long everySteps) {
            evalStrategy = strategy;
            evalSteps = everySteps;
            return this;
        }

        /** Sequences per evaluation batch. */
        public Builder evalBatchSize(int v) {
            evalBatchSize = v;
            return this;
        }

        public Builder seed(long v) {
            seed = v;
            return this;
        }

        /** Whether metrics.jsonl is written. */
        public Builder metricsFile(boolean v) {
            metricsFile = v;
            return this;
        }

        /** Whether report.html is written. */
        public Builder htmlReport(boolean v) {
            htmlReport = v;
            return this;
        }

        /** Non-finite steps in a row (their updates skipped) after which the run stops. */
        public Builder maxNonfiniteSteps(int v) {
            maxNonfiniteSteps = v;
            return this;
        }

        /** How precise the optimizer state is and where it lives (default: fp32 on the device). */
        public Builder optimizerState(OptimizerStatePrecision precision, OptimizerStatePlacement placement) {
            optimizerStatePrecision = precision;
            optimizerStatePlacement = placement;
            return this;
        }

        /** When a step's update reaches the weights (default: immediately; delayed needs HOST placement). */
        public Builder optimizerStepTiming(OptimizerStepTiming v) {
            optimizerStepTiming = v;
            return this;
        }

        public Builder activationPlacement(ActivationPlacement v) {
            activationPlacement = v;
            return this;
        }

        public Builder weightPlacement(WeightPlacement v) {
            weightPlacement = v;
            return this;
        }

        /** How examples become micro-batches: their order, and packing (default: one example per row, grouped by length). */
        public Builder batching(Batching v) {
            batching = v;
            return this;
        }

        /** Checks the settings (see the record's constructor) and builds. */
        public TrainerConfig build() {
            return new TrainerConfig(epochs, maxSteps, batchSize, gradientAccumulation, learningRate, schedule, warmupRatio,
                    warmupSteps, weightDecay, beta1, beta2, epsilon, maxGradNorm, checkpointing, mlpTiling, keptAttention, loggingSteps, saveStrategy,
                    saveSteps, saveTotalLimit, evalStrategy, evalSteps, seed, metricsFile, htmlReport, evalBatchSize,
                    maxNonfiniteSteps, optimizerStatePrecision, optimizerStatePlacement, optimizerStepTiming, activationPlacement,
                    weightPlacement, batching, checkpointContents, groupLearningRates, worldSize, ddpBucketBytes, optimizerSharding);
        }

        /** Learning rates of their own for parameters by name (default: none, every parameter at the main rate). */
        public Builder groupLearningRates(java.util.List<GroupLearningRate> v) {
            groupLearningRates = v;
            return this;
        }

        /**
         * Data-parallel ranks (default 1): each optimizer step takes {@code batchSize x gradientAccumulation x worldSize}
         * examples, {@code gradientAccumulation} micro-batches on each rank, as HF counts a global batch.
         */
        public Builder worldSize(int v) {
            worldSize = v;
            return this;
        }

        /**
         * The most bytes one all-reduce of the ranks' gradient sums carries (default 25 MiB, torch DDP's
         * {@code bucket_cap_mb}): the flat gradient buffers are summed in pieces of at most this.
         */
        public Builder ddpBucketBytes(long v) {
            ddpBucketBytes = v;
            return this;
        }

        /** What the data-parallel ranks shard of the optimizer (default: nothing; see {@link OptimizerSharding}). */
        public Builder optimizerSharding(OptimizerSharding v) {
            optimizerSharding = v;
            return this;
        }

        /** What checkpoints hold (default: the weights and the optimizer's state). */
        public Builder checkpointContents(CheckpointContents v) {
            checkpointContents = v;
            return this;
        }
    }
}
