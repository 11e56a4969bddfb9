package dev.jtune.train.loop;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.DType;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.train.report.MemoryReport;
import dev.jtune.engine.optim.HostOffloadAdamW;
import dev.jtune.engine.optim.ShardedAdamW;
import dev.jtune.engine.dist.BucketedGradientSum;
import dev.jtune.engine.dist.ShardedGradients;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.dist.PlannedWorld;
import dev.jtune.engine.offload.HostActivationStore;
import dev.jtune.engine.offload.SlottedUnits;
import dev.jtune.engine.optim.GradClip;
import dev.jtune.engine.nn.ComputeCopies;
import dev.jtune.engine.optim.GradientBuffer;
import dev.jtune.engine.optim.Optimizer;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.data.Example;
import dev.jtune.train.report.ErrorChain;
import dev.jtune.train.report.HtmlReport;
import dev.jtune.train.report.MetricsLog;
import dev.jtune.train.report.Progress;
import dev.jtune.train.report.RunReport;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.SequencedMap;

/**
 * The training loop: micro-batches in a deterministic order, gradient accumulation with the loss normalised by
 * the step's counted tokens, the global gradient norm (clipped when asked), AdamW with the learning-rate schedule,
 * checkpoints, eval, metrics, progress and the report. The same seed and data give the same run, which is what
 * lets a run resumed from a checkpoint continue the uninterrupted run exactly.
 *
 * <p>A step whose loss or gradient norm is not finite applies no update (the optimizer's step count does not
 * advance), is logged, and starts no checkpoint; {@link TrainerConfig#maxNonfiniteSteps()} of them in a row stop the
 * run with a {@link RunException}, the newest checkpoint still the last good one. The final step is always
 * checkpointed, after the final weights and report are written: a run whose last checkpoint is its last step is
 * finished.
 */
public final class Trainer implements AutoCloseable {
    private final TrainerConfig config;
    private final Trainable trainable;
    private final Batcher train;
    private final List<Example> eval;
    private final Path outputDir;
    private final Device device;
    private final Progress progress;
    private final CheckpointStore checkpoints;
    private final MetricsLog metrics;
    private final RunInfo info;
    private final Optimizer optimizer;
    /** The memory report of the latest step. */
    private MemoryReport memory;
    private final List<StepRecord> history = new ArrayList<>();
    private final int padId;
    private final ActivationStore activations;
    /** The adapters' bf16 copies, made once a step ({@link Residency#computeCopies}), or null. */
    private final ComputeCopies computeCopies;
    /** The data-parallel world, or null for a run on one device. */
    private final Collectives world;
    /** In a world, the flat gradient buffers' buckets (summed as the step's last backward fills them), or null. */
    private final BucketedGradientSum gradientSum;
    /** Each rank's device peak, once a data-parallel run finished (for rank 0's report). */
    private String perRankMemory;

    /**
     * What the trainer records about its run besides the steps: the report's title, the run's identity (stored with
     * every checkpoint), and the settings as the report's table lists them.
     */
    public record RunInfo(String title, RunIdentity identity, List<RunReport.Setting> settings) {
        public RunInfo {
            Objects.requireNonNull(title, "title");
            Objects.requireNonNull(identity, "identity");
            settings = List.copyOf(settings);
        }
    }

    private Trainer(Builder b) {
        this.config = b.config;
        this.trainable = b.trainable;
        this.padId = b.padId;
        this.train = new Batcher(b.trainSet, config.batchSize(), config.seed(), padId, config.batching());
        this.eval = List.copyOf(b.evalSet);
        this.outputDir = Objects.requireNonNull(b.outputDir, "outputDir");
        this.device = trainable.model().device();
        this.progress = Objects.requireNonNull(b.progress, "progress");
        this.info = Objects.requireNonNull(b.info, "info");
        this.checkpoints = new CheckpointStore(outputDir, config.saveTotalLimit(), config.checkpointContents());
        this.metrics = new MetricsLog(outputDir.resolve("metrics.jsonl"));
        this.world = b.world;
        this.optimizer = Residency.place(config, trainable, world);
        this.gradientSum = world == null ? null : DataParallel.bucketsOf(world, trainable, optimizer.gradientBuffers(), config.ddpBucketBytes());
        this.activations = Residency.activationStore(config, device);
        this.computeCopies = Residency.computeCopies(trainable);
    }

    /** Whether this run makes the adapters' bf16 copies in one launch a step ({@link Residency#computeCopies}). */
    boolean makesComputeCopies() {
        return computeCopies != null;
    }

    /** This process's rank in the data-parallel world (0 alone). */
    private int rank() {
        return world == null ? 0 : world.rank();
    }

    /** The data-parallel world's size (1 alone). */
    private int ranks() {
        return world == null ? 1 : world.worldSize();
    }

    /** Whether this process writes the run's files (checkpoints, metrics, report, the final model): rank 0 of a world. */
    private boolean writes() {
        return rank() == 0;
    }

    /**
     * Applies a pending delayed update and releases what the optimizer and the activation store hold outside scopes
     * (threads, copy streams); their memory belongs to the scope that holds the model. The trainer is done after it.
     */
    @Override
    public void close() {
        try {
            if (gradientSum != null) {
                gradientSum.close();
            }
            if (computeCopies != null) {
                computeCopies.close();
            }
            optimizer.close();
        } finally {
            try {
                if (activations instanceof HostActivationStore h) {
                    h.close();
                }
            } finally {
                trainable.model().layerWeights().ifPresent(SlottedUnits::close);
            }
        }
    }

    /**
     * The in-step host-offloaded AdamW streams gradients to the host during backward ({@link HostOffloadAdamW.Gradients#STREAMED});
     * {@code -Djtune.offload.streamGradients=false} keeps a device gradient buffer instead (the path measured on an
     * H100 before streaming existed; streaming is tested on the cpu and its GPU test has not run yet). Read when an
     * optimizer is built.
     */
    public static final String STREAM_GRADIENTS_PROPERTY = "jtune.offload.streamGradients";

    public static Builder builder(TrainerConfig config, Trainable trainable) {
        return new Builder(config, trainable);
    }

    /** A trainer's inputs; training examples, output directory and run info are required. */
    public static final class Builder {
        private final TrainerConfig config;
        private final Trainable trainable;
        private List<Example> trainSet;
        private List<Example> evalSet = List.of();
        private Path outputDir;
        private Progress progress = Progress.silent();
        private RunInfo info;
        private int padId;
        private Collectives world;

        private Builder(TrainerConfig config, Trainable trainable) {
            this.config = Objects.requireNonNull(config, "config");
            this.trainable = Objects.requireNonNull(trainable, "trainable");
        }

        public Builder train(List<Example> examples) {
            this.trainSet = examples;
            return this;
        }

        public Builder eval(List<Example> examples) {
            this.evalSet = examples;
            return this;
        }

        public Builder outputDir(Path dir) {
            this.outputDir = dir;
            return this;
        }

        public Builder progress(Progress p) {
            this.progress = p;
            return this;
        }

        public Builder info(RunInfo i) {
            this.info = i;
            return this;
        }

        /** The pad token id of the batches (the tokenizer's). */
        public Builder padId(int id) {
            this.padId = id;
            return this;
        }

        /**
         * The data-parallel world this process is a rank of (its size must be the config's {@code worldSize}): each
         * step's micro-batches are split by rank, gradients summed over the ranks before clipping, rank 0 writes.
         */
        public Builder world(Collectives w) {
            this.world = w;
            return this;
        }

        public Trainer build() {
            Objects.requireNonNull(trainSet, "train examples");
            int size = world == null ? 1 : world.worldSize();
            if (size != config.worldSize()) {
                throw new IllegalArgumentException("the trainer's world has " + size + " rank(s), its config " + config.worldSize());
            }
            if (size > 1 && config.optimizerStatePlacement() == TrainerConfig.OptimizerStatePlacement.HOST && !config.optimizerSharding().shardsState()) {
                throw new UnsupportedOperationException(TrainerConfig.HOST_OPTIMIZER_NOT_WITH_DATA_PARALLEL);
            }
            return new Trainer(this);
        }
    }

    /** Optimizer steps of the whole run. */
    public long totalSteps() {
        return totalSteps(config, train.batchesPerEpoch());
    }

    /** Optimizer steps of a run of this config over {@code examples}, before any trainer exists. */
    public static long totalSteps(TrainerConfig config, int examples) {
        return totalSteps(config, (long) Math.ceil(examples / (double) config.batchSize()));
    }

    private static long totalSteps(TrainerConfig config, long batchesPerEpoch) {
        if (config.maxSteps() > 0) {
            return config.maxSteps();
        }
        return (long) Math.ceil(stepsPerEpoch(config, batchesPerEpoch) * config.epochs());
    }

    /** Optimizer steps in one pass over the data: each takes accumulation x world size micro-batches. */
    private static long stepsPerEpoch(TrainerConfig config, long batchesPerEpoch) {
        long perStep = microBatchesPerStep(config);
        return Math.max(1, (batchesPerEpoch + perStep - 1) / perStep);
    }

    /** The micro-batches of one optimizer step over all ranks. */
    private static long microBatchesPerStep(TrainerConfig config) {
        return (long) config.gradientAccumulation() * config.worldSize();
    }

    public List<StepRecord> history() {
        return List.copyOf(history);
    }

    /** Trains from the start, or from {@code resumeFrom} (a checkpoint directory, validated first) when present. */
    public List<StepRecord> run(Optional<Path> resumeFrom) {
        return run(resumeFrom, Long.MAX_VALUE);
    }

    /**
     * As {@link #run(Optional)}, but stops after optimizer step {@code stopAfter} as an interrupted run would: no
     * final weights or report (tests use it to interrupt and resume).
     */
    public List<StepRecord> run(Optional<Path> resumeFrom, long stopAfter) {
        OutputDirectory.Plan plan = resumeFrom.<OutputDirectory.Plan>map(p -> new OutputDirectory.Plan.Resume(p, CheckpointStore.validate(p), List.of()))
                .orElse(new OutputDirectory.Plan.Fresh());
        return run(plan, stopAfter);
    }

    /** Where memory went, by category, as of the latest step (empty before any step ran). */
    public java.util.Optional<MemoryReport> memoryReport() {
        return java.util.Optional.ofNullable(memory);
    }

    /** Runs a plan of {@link OutputDirectory#plan}: a fresh start or a resume (a finished run is not run again). */
    public List<StepRecord> run(OutputDirectory.Plan plan, long stopAfter) {
        CheckpointStore.State start = switch (plan) {
            case OutputDirectory.Plan.Fresh f -> new CheckpointStore.State(new CheckpointStore.Position(0, 0), 0, config.seed(), 0, 0, 0,
                    totalSteps(), info.identity(), List.of());
            case OutputDirectory.Plan.Resume r -> {
                CheckpointStore.restore(r.checkpoint(), r.state(), trainable, optimizer, action -> Residency.withWholeWeights(trainable, action));
                trainable.model().weightsChanged(); // offloaded layers: their host values were rewritten
                progress.message("resumed from " + r.checkpoint() + " at step " + r.state().position().step());
                r.notes().forEach(n -> progress.message("note: " + n));
                yield r.state();
            }
            case OutputDirectory.Plan.Finished f -> throw new IllegalArgumentException("a finished run is not run again: " + f.message());
        };
        history.clear();
        history.addAll(start.history());
        if (config.metricsFile() && writes()) {
            metrics.rewrite(history); // what a killed run logged after its checkpoint is logged again, once
        }
        List<StepRecord> log;
        try {
            log = loop(start, stopAfter);
        } catch (RuntimeException | Error e) {
            writeReport(Optional.of(ErrorChain.describe(e)));
            throw e;
        }
        flushOptimizer(); // a delayed host update lands in the weights the caller reads (a failed run's error stays the one thrown)
        return log;
    }

    private List<StepRecord> loop(CheckpointStore.State start, long stopAfter) {
        long total = totalSteps();
        long warmup = config.warmupSteps() > 0 ? config.warmupSteps() : (long) Math.ceil(config.warmupRatio() * total);
        LrSchedule schedule = new LrSchedule(config.schedule(), config.learningRate(), warmup, total);
        Backend backend = Backends.get(device);
        backend.resetPeaks(); // the report's peaks are this run's steps' (not model loading's, nor an earlier run's in this JVM)
        long startNanos = System.nanoTime();
        long micro = start.position().microBatches();
        long tokensSoFar = start.tokens();
        long skipped = start.skippedSteps();
        int nonFiniteInARow = 0;
        for (long step = start.position().step(); step < total; step++) {
            long t0 = System.nanoTime();
            List<int[]> batches = new ArrayList<>(); // the step's micro-batches over every rank, in order
            for (long i = 0; i < microBatchesPerStep(config); i++) {
                batches.add(microBatch(micro + i));
            }
            StepTiming timing = STEP_TIMING ? StepTiming.start(backend) : null;
            StepResult result = step(batches, micro, schedule.lr(step));
            micro += batches.size();
            long t1 = System.nanoTime();
            backend.synchronize();
            double seconds = (System.nanoTime() - t0) / 1e9;
            if (timing != null) {
                System.err.println(timing.line(step + 1, t0, t1, backend));
            }
            tokensSoFar += result.tokens();
            boolean finite = Double.isFinite(result.loss()) && Double.isFinite(result.gradNorm());
            nonFiniteInARow = finite ? 0 : nonFiniteInARow + 1;
            skipped += finite ? 0 : 1;
            long done = step + 1;
            boolean log = done % Math.max(1, config.loggingSteps()) == 0 || done == total || done == 1 || !finite;
            double evalLoss = shouldAct(config.evalStrategy(), config.evalSteps(), done) && !eval.isEmpty() ? evaluate() : Double.NaN;
            MemoryStats mem = backend.memoryStats();
            memory = MemoryReport.of(mem);
            StepRecord r = new StepRecord(done, (double) micro / train.batchesPerEpoch(), result.loss(), result.gradNorm(), schedule.lr(step),
                    evalLoss, tokensSoFar, result.tokens() / seconds,
                    mem.allocated() / (double) (1L << 30), mem.peakAllocated() / (double) (1L << 30),
                    start.elapsedSeconds() + (System.nanoTime() - startNanos) / 1e9, skipped, memory.bytes());
            if (log || r.hasEval()) {
                history.add(r);
                if (config.metricsFile() && writes()) {
                    metrics.append(r);
                }
                PauseHook.at("after-log", done);
            }
            progress.step(r, total, log);
            if (!finite) {
                progress.message(String.format(java.util.Locale.ROOT, "step %d: loss %s, gradient norm %s: not finite, update skipped (%d in a row, %d allowed)",
                        done, result.loss(), result.gradNorm(), nonFiniteInARow, config.maxNonfiniteSteps()));
                if (nonFiniteInARow >= config.maxNonfiniteSteps()) {
                    throw diverged(done, nonFiniteInARow);
                }
            }
            boolean last = done == total;
            if (last || finite && shouldAct(config.saveStrategy(), config.saveSteps(), done)) {
                CheckpointStore.State state = new CheckpointStore.State(new CheckpointStore.Position(done, micro), optimizer.steps(),
                        config.seed(), tokensSoFar, r.elapsedSeconds(), skipped, total, info.identity(), history);
                if (last) {
                    PauseHook.at("after-final");
                    finish(state);
                    return history();
                }
                flushOptimizer(); // weights and state of the same step
                saveCheckpoint(state);
            }
            if (done >= stopAfter) {
                progress.message("stopped after step " + done);
                return history();
            }
        }
        return history(); // a resumed run that was already at its end
    }

    /**
     * {@code -Djtune.step.timing=true}: each step prints where its wall time went and what ran beside it (a measurement
     * aid for slow steps: the JVM's collections, the allocator going to the device).
     */
    private static final boolean STEP_TIMING = Boolean.getBoolean("jtune.step.timing");

    /** A step's counters at its start: the JVM's collections and the device allocator's calls. */
    private record StepTiming(long gcCount, long gcMillis, long deviceAllocations, long deviceFrees) {
        static StepTiming start(Backend backend) {
            MemoryStats m = backend.memoryStats();
            long[] gc = gc();
            return new StepTiming(gc[0], gc[1], m.deviceAllocations(), m.deviceFrees());
        }

        private static long[] gc() {
            long count = 0;
            long millis = 0;
            for (java.lang.management.GarbageCollectorMXBean b : java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()) {
                count += Math.max(0, b.getCollectionCount());
                millis += Math.max(0, b.getCollectionTime());
            }
            return new long[] {count, millis};
        }

        /** "step N timing: ..." from the start's counters; t1: when the step's host work was queued (before the final sync). */
        String line(long step, long t0, long t1, Backend backend) {
            long now = System.nanoTime();
            MemoryStats m = backend.memoryStats();
            long[] gc = gc();
            return String.format(java.util.Locale.ROOT, "step %d timing: %.1f ms (host %.1f ms, then waiting for the device %.1f ms);"
                            + " JVM collections %d (%d ms); device allocator: %d allocations, %d frees", step, (now - t0) / 1e6, (t1 - t0) / 1e6,
                    (now - t1) / 1e6, gc[0] - gcCount, gc[1] - gcMillis, m.deviceAllocations() - deviceAllocations, m.deviceFrees() - deviceFrees);
        }
    }

    /** The loss and gradient norm of one optimizer step, and the update applied when both are finite. */
    private record StepResult(double loss, double gradNorm, int tokens) {
    }

    /**
     * One optimizer step over {@code batches}, the micro-batches of every rank ({@code micro} numbers the first): this
     * rank runs those whose index within the step is its rank modulo the world size (rank r: r, r + N, ...), each
     * micro-batch's loss divided by the label tokens of the whole step, so the gradients summed over the ranks are those
     * of one device running every micro-batch; dropout draws by the micro-batch's number in the run, whatever rank runs it.
     */
    private StepResult step(List<int[]> batches, long micro, double lr) {
        int counted = 0;
        int tokens = 0;
        for (int[] b : batches) {
            counted += train.countedTokens(b);
            tokens += train.tokens(b);
        }
        int ranks = ranks();
        int rank = rank();
        try (Scope s = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
            Tensor stepLoss = null;
            ShardedGradients sharded = shardedGradients(optimizer);
            int rounds = 0;
            // the adapters' copies are made from this step's weights and found by every micro-batch's products
            try (Scope.Entered copies = computeCopies == null ? null : computeCopies.provide()) {
                for (int i = rank; i < batches.size(); i += ranks) {
                    trainable.train(CounterRng.bits(config.seed(), micro + i));
                    try (Scope mb = Scope.open("micro-batch", MemoryCategory.ACTIVATIONS)) {
                        Batcher.Batch t = train.batch(batches.get(i), device);
                        Tensor loss = microBatchLoss(config, trainable, activations, t, counted);
                        if (gradientSum != null && i + ranks >= batches.size()) {
                            gradientSum.arm(); // this rank's last backward of the step: its buckets are summed as they fill
                        }
                        loss.backward();
                        if (sharded != null) { // ZeRO stage 2: every backward's buckets are reduced before the next one fills them
                            sharded.reduce();
                            rounds++;
                        }
                        try (Autograd.GradMode off = Autograd.noGrad()) {
                            Tensor l = loss.detach();
                            stepLoss = mb.keep(stepLoss == null ? l.copy() : Ops.add(stepLoss, l)); // the sum outlives the micro-batch
                        }
                    }
                }
            }
            trainable.eval();
            if (sharded != null) {
                for (; rounds < Math.ceilDiv(batches.size(), ranks); rounds++) {
                    // a rank with fewer micro-batches than others meets their rounds empty (a step holds ranks x
                    // accumulation micro-batches, wrapping epochs, so this guards a step given fewer)
                    sharded.reduce();
                }
                sharded.finish();
                stepLoss = DataParallel.sumLossOverRanks(world, stepLoss, device);
            } else if (world != null) {
                stepLoss = DataParallel.sumOverRanks(world, trainable, gradientSum, stepLoss, device);
            }
            // the norm is measured with or without clipping: a non-finite one must be seen before it reaches the weights
            GradClip.GradNorm norm = clipOrMeasure();
            double loss = stepLoss.item(); // the host syncs of the step: the loss and the gradient norm
            double gradNorm = norm.value();
            if (Double.isFinite(loss) && Double.isFinite(gradNorm)) {
                optimizer.learningRate(lr);
                optimizer.step();
                trainable.model().weightsChanged(); // offloaded layers are copied again with the new values
            }
            optimizer.zeroGrad();
            return new StepResult(loss, gradNorm, tokens);
        }
    }

    /** A micro-batch's loss as a step computes it: the one place the step's model options (checkpointing, chunk) are set. */
    private static Tensor microBatchLoss(TrainerConfig config, Trainable trainable, ActivationStore activations, Batcher.Batch batch,
                                         int counted) {
        return trainable.loss(batch, options(config, activations), Math.max(1, counted));
    }

    /** The model's options in a run of {@code config}: its checkpointing, MLP tiling and activation store. */
    private static Gemma3Model.Options options(TrainerConfig config, ActivationStore activations) {
        return new Gemma3Model.Options(config.checkpointing(), 512, activations, config.mlpTiling(), config.keptAttention());
    }

    /**
     * The memory of one optimizer step of {@code trainable} on synthetic micro-batches of {@code batchSize} sequences of
     * {@code seqLength} tokens, all counted, on the model's device: the optimizer is built as a run builds it, the peaks
     * are reset once the parameters and the optimizer's state exist (as a run resets them when its steps start), then
     * up to two micro-batches (the second sees the first's gradients, as accumulation does), the gradient norm (and
     * clipping) and the update run as in a run's step, without reading any value. On the meta device this is the
     * planner's prediction (shapes and allocations, no arithmetic); on the cpu or a GPU, a measurement of the same.
     */
    public static MemoryStats measureStep(TrainerConfig config, Trainable trainable, int batchSize, int seqLength) {
        return measureStep(config, trainable, batchSize, seqLength, 0);
    }

    /**
     * {@link #measureStep(TrainerConfig, Trainable, int, int)} with {@code imagesPerSequence} images in each sequence of an
     * image-text model (their soft tokens first, zero pixels): the tower's and projector's memory (a frozen tower's
     * transient, a trained one's activations) counted with the language model's.
     */
    public static MemoryStats measureStep(TrainerConfig config, Trainable trainable, int batchSize, int seqLength, int imagesPerSequence) {
        Device device = trainable.model().device();
        if (imagesPerSequence > 0 && trainable.multimodal().isEmpty()) {
            throw new IllegalArgumentException("images in a measured step need an image-text model");
        }
        Backend backend = Backends.get(device);
        try (Scope run = Scope.open("measured step", MemoryCategory.OPTIMIZER)) {
            // one process: a ZeRO rank is planned on the meta device as rank 0 of a world that moves nothing (its shards of
            // the state, gradients and frozen weights, its gathers); measured on a real device, whole (no world)
            Collectives planned = device.kind() == Device.Kind.META && config.worldSize() > 1 ? PlannedWorld.rankZeroOf(config.worldSize()) : null;
            Optimizer optimizer = Residency.place(config, trainable, planned);
            ActivationStore activations = Residency.activationStore(config, device);
            ComputeCopies computeCopies = Residency.computeCopies(trainable);
            backend.synchronize();
            backend.resetPeaks();
            try (Scope s = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
                int micro = Math.min(2, config.gradientAccumulation());
                ShardedGradients sharded = shardedGradients(optimizer); // ZeRO stage 2 (a planned rank): reduced as a run does
                int[] ids = new int[batchSize * seqLength]; // token 0 (pad) everywhere: the values do not change the memory
                var vc = imagesPerSequence == 0 ? null : trainable.multimodal().orElseThrow().visionConfig();
                if (vc != null) { // each sequence's images' soft tokens first
                    int tokens = imagesPerSequence * vc.mmTokensPerImage();
                    if (tokens > seqLength) {
                        throw new IllegalArgumentException(imagesPerSequence + " images of " + vc.mmTokensPerImage() + " tokens do not fit "
                                + seqLength + " tokens");
                    }
                    for (int r = 0; r < batchSize; r++) {
                        java.util.Arrays.fill(ids, r * seqLength, r * seqLength + tokens, vc.imageToken());
                    }
                }
                try (Scope.Entered copies = computeCopies == null ? null : computeCopies.provide()) {
                    for (int i = 0; i < micro; i++) {
                        trainable.train(CounterRng.bits(config.seed(), i));
                        try (Scope mb = Scope.open("micro-batch", MemoryCategory.ACTIVATIONS)) {
                            dev.jtune.engine.Shape shape = dev.jtune.engine.Shape.of(batchSize, seqLength);
                            // an image-text model reads its ids on the host (where its images' tokens are): meta holds no values
                            Device idsOn = trainable.multimodal().isPresent() ? Device.CPU : device;
                            Batcher.Batch t = new Batcher.Batch(Tensor.fromArray(ids, shape, dev.jtune.engine.DType.I32, idsOn),
                                    Tensor.fromArray(ids, shape, dev.jtune.engine.DType.I32, idsOn), null, List.of());
                            Tensor pixels = vc == null ? null : Tensor.zeros(dev.jtune.engine.Shape.of((long) batchSize * imagesPerSequence, 3,
                                    vc.imageSize(), vc.imageSize()), dev.jtune.engine.DType.F32, device);
                            trainable.loss(t, pixels, options(config, activations), micro * batchSize * seqLength).backward();
                            if (sharded != null) {
                                sharded.reduce();
                            }
                        }
                    }
                }
                if (sharded != null) {
                    sharded.finish();
                }
                trainable.eval();
                clipOrMeasure(config.maxGradNorm(), optimizer, trainable);
                optimizer.step();
                trainable.model().weightsChanged();
                optimizer.zeroGrad();
            }
            optimizer.flush();
            backend.synchronize();
            MemoryStats stats = backend.memoryStats();
            if (computeCopies != null) {
                computeCopies.close();
            }
            optimizer.close();
            if (activations instanceof HostActivationStore h) {
                h.close();
            }
            trainable.model().layerWeights().ifPresent(SlottedUnits::close);
            return stats;
        }
    }

    /** ZeRO stage 2's sharded gradients when {@code optimizer} keeps them (reduced after every backward), else null. */
    private static ShardedGradients shardedGradients(Optimizer optimizer) {
        return optimizer instanceof ShardedAdamW s ? s.gradients().orElse(null) : null;
    }

    /**
     * The global gradient norm (before clipping), the gradients clipped to {@code --max_grad_norm} when it is positive:
     * by the optimizer when it holds them off the device (streamed to the host), over its flat gradient buffers (one
     * launch each) when it keeps them, else over the parameters' list.
     */
    private GradClip.GradNorm clipOrMeasure() {
        return clipOrMeasure(config.maxGradNorm(), optimizer, trainable);
    }

    private static GradClip.GradNorm clipOrMeasure(double max, Optimizer optimizer, Trainable trainable) {
        java.util.Optional<GradClip.GradNorm> held = optimizer.clipHeldGradients(max);
        if (held.isPresent()) {
            return held.get();
        }
        List<GradientBuffer> flat = optimizer.gradientBuffers();
        if (flat.isEmpty()) {
            return max > 0 ? GradClip.clipGradNorm(trainable.parameters(), max) : GradClip.norm(trainable.parameters());
        }
        return max > 0 ? GradClip.clipFlatGradNorm(flat, max) : GradClip.flatNorm(flat);
    }

    private RunException diverged(long step, int inARow) {
        String last = checkpoints.latest().map(p -> "The newest checkpoint, " + p + ", holds the last good weights. ")
                .orElse("No checkpoint was written before it. ");
        return new RunException(String.format(java.util.Locale.ROOT,
                "the loss or gradient norm was not finite for %d steps in a row (steps %d to %d): the run stopped at step %d. %s"
                        + "Try a lower --learning_rate, clipping (--max_grad_norm 1.0), or look for broken records in the data; "
                        + "--max_nonfinite_steps sets how many such steps in a row are tolerated.",
                inARow, step - inARow + 1, step, step, last));
    }

    /**
     * Applies a delayed host update now (a collective in a world: the ranks gather its weights), and tells the model its
     * layer weights changed (ZeRO stage 3's parts: each layer is gathered again).
     */
    private void flushOptimizer() {
        optimizer.flush();
        trainable.model().weightsChanged();
    }

    /** The final weights, the report, then the final checkpoint, which marks the run finished. */
    private void finish(CheckpointStore.State state) {
        flushOptimizer();
        progress.done();
        if (world != null) { // every rank takes part; rank 0 reports
            perRankMemory = DataParallel.peaksByRank(world, Backends.get(device).memoryStats(), device);
            if (writes()) {
                progress.message("device peak per rank: " + perRankMemory);
            }
        }
        Residency.withWholeWeights(trainable, () -> { // every rank lends its part of sharded weights; rank 0 writes
            if (writes()) {
                trainable.save(outputDir);
            }
        });
        writeReport(Optional.empty());
        saveCheckpoint(state); // a sharded optimizer's state is gathered from every rank
    }

    /**
     * Rank 0 (or the only process) writes checkpoint-N. Every rank reads the optimizer's state (called on every rank),
     * since a sharded optimizer gathers it from all of them (a collective); the others then drop it.
     */
    private void saveCheckpoint(CheckpointStore.State state) {
        boolean withState = config.checkpointContents() == TrainerConfig.CheckpointContents.MODEL_AND_STATE;
        try (Scope s = Scope.open("checkpoint state")) {
            SequencedMap<String, Tensor> optimizerState = withState ? optimizer.state() : null;
            Residency.withWholeWeights(trainable, () -> {
                if (writes()) {
                    checkpoints.save(state, trainable, optimizerState);
                }
            });
        }
    }

    private void writeReport(Optional<String> failure) {
        if (!config.htmlReport() || !writes()) {
            return;
        }
        List<RunReport.Entry> identity = new ArrayList<>();
        identity.add(new RunReport.Entry("jtune", Version.get()));
        identity.add(new RunReport.Entry("device", Backends.get(device).description()));
        if (perRankMemory != null) {
            identity.add(new RunReport.Entry("device peak per rank", perRankMemory));
        }
        info.identity().fixed().forEach((k, v) -> identity.add(new RunReport.Entry(k, v)));
        HtmlReport.write(outputDir.resolve("report.html"), new RunReport(info.title(), identity, info.settings(), history,
                device + " (" + (device.kind() == Device.Kind.CPU ? "host memory" : "device memory") + ")", failure));
    }

    private boolean shouldAct(TrainerConfig.SaveStrategy strategy, long every, long done) {
        return switch (strategy) {
            case NO -> false;
            case STEPS -> every > 0 && done % every == 0;
            case EPOCH -> done % stepsPerEpoch(config, train.batchesPerEpoch()) == 0;
        };
    }

    /** Micro-batch number {@code index} of the whole run (epochs follow each other). */
    private int[] microBatch(long index) {
        long epoch = index / train.batchesPerEpoch();
        return train.epoch(epoch).get((int) (index % train.batchesPerEpoch()));
    }

    /**
     * Mean loss over the eval set's counted tokens, without recording gradients or dropout. In a data-parallel world each
     * rank evaluates every N-th batch (rank r: r, r + N, ...) and the token-weighted sums are added over the ranks: a
     * collective, which every rank calls at the same steps.
     */
    public double evaluate() {
        flushOptimizer(); // a delayed host update first: evaluation sees the newest weights
        Batcher batcher = new Batcher(eval, config.evalBatchSize(), config.seed(), padId);
        double sum = 0;
        long count = 0;
        trainable.eval();
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (int[] b : DataParallel.shareOf(batcher.epoch(0), rank(), ranks())) {
                int c = batcher.countedTokens(b);
                if (c == 0) {
                    continue;
                }
                try (Scope s = Scope.open("eval", MemoryCategory.ACTIVATIONS)) {
                    sum += trainable.loss(batcher.batch(b, device), Gemma3Model.Options.defaults(), 0).item() * c;
                    count += c;
                }
            }
        }
        if (world != null) {
            try (Scope s = Scope.open("eval sums")) {
                Tensor both = Tensor.fromArray(new double[] {sum, count}, Shape.of(2), DType.F64, device);
                world.allReduce(both, Collectives.Reduction.SUM);
                double[] v = both.toDoubleArray();
                sum = v[0];
                count = Math.round(v[1]);
            }
        }
        return count == 0 ? Double.NaN : sum / count;
    }

    public CheckpointStore checkpoints() {
        return checkpoints;
    }
}
