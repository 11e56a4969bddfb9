package dev.jtune.train.loop;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.GradClip;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.data.Example;
import dev.jtune.train.report.HtmlReport;
import dev.jtune.train.report.MetricsLog;
import dev.jtune.train.report.Progress;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The training loop: micro-batches in a deterministic order, gradient accumulation with the loss normalised by
 * the step's counted tokens, global-norm clipping, AdamW with the learning-rate schedule, checkpoints, eval,
 * metrics, progress and the final report. The same seed and data give the same run, which is what lets a run
 * resumed from a checkpoint continue the uninterrupted run's loss curve exactly.
 */
public final class Trainer {
    private final TrainerConfig config;
    private final Trainable trainable;
    private final Batcher train;
    private final List<Example> eval;
    private final Path outputDir;
    private final Device device;
    private final Progress progress;
    private final CheckpointStore checkpoints;
    private final MetricsLog metrics;
    private final String settings;
    private final AdamW optimizer;
    private final List<StepRecord> history = new ArrayList<>();
    private final int padId;

    public Trainer(TrainerConfig config, Trainable trainable, List<Example> trainSet, List<Example> evalSet, Path outputDir,
                   Progress progress, String settings, int padId) {
        this.config = config;
        this.trainable = trainable;
        this.padId = padId;
        this.train = new Batcher(trainSet, config.batchSize(), config.seed(), padId);
        this.eval = List.copyOf(evalSet);
        this.outputDir = outputDir;
        this.device = trainable.model().device();
        this.progress = progress;
        this.settings = settings;
        this.checkpoints = new CheckpointStore(outputDir, config.saveTotalLimit());
        this.metrics = new MetricsLog(outputDir.resolve("metrics.jsonl"));
        try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
            this.optimizer = new AdamW(trainable.parameters(), new AdamW.Config(config.learningRate(), config.beta1(), config.beta2(),
                    config.epsilon(), config.weightDecay()));
        }
    }

    /** Optimizer steps of the whole run. */
    public long totalSteps() {
        if (config.maxSteps() > 0) {
            return config.maxSteps();
        }
        return (long) Math.ceil(stepsPerEpoch() * config.epochs());
    }

    /** Optimizer steps in one pass over the data. */
    private long stepsPerEpoch() {
        return Math.max(1, (train.batchesPerEpoch() + config.gradientAccumulation() - 1) / config.gradientAccumulation());
    }

    public List<StepRecord> history() {
        return List.copyOf(history);
    }

    /** Trains from the start, or from {@code resumeFrom} (a checkpoint directory) when present. */
    public List<StepRecord> run(Optional<Path> resumeFrom) {
        return run(resumeFrom, Long.MAX_VALUE);
    }

    /**
     * As {@link #run(Optional)}, but stops after optimizer step {@code stopAfter} as an interrupted run would: no
     * final weights or report (tests use it to interrupt and resume).
     */
    public List<StepRecord> run(Optional<Path> resumeFrom, long stopAfter) {
        long total = totalSteps();
        long warmup = config.warmupSteps() > 0 ? config.warmupSteps() : (long) Math.ceil(config.warmupRatio() * total);
        LrSchedule schedule = new LrSchedule(config.schedule(), config.learningRate(), warmup, total);
        CheckpointStore.Position at = new CheckpointStore.Position(0, 0);
        if (resumeFrom.isPresent()) {
            CheckpointStore.Loaded loaded = checkpoints.restore(resumeFrom.get(), trainable, optimizer);
            at = loaded.position();
            history.addAll(loaded.history());
            progress.message("resumed from " + resumeFrom.get() + " at step " + at.step());
        }
        Backend backend = dev.jtune.engine.backend.Backends.get(device);
        long startNanos = System.nanoTime();
        double elapsedBefore = history.isEmpty() ? 0 : history.get(history.size() - 1).elapsedSeconds();
        long micro = at.microBatches();
        long tokensSoFar = 0;
        for (long step = at.step(); step < total; step++) {
            long t0 = System.nanoTime();
            List<int[]> batches = new ArrayList<>();
            for (int i = 0; i < config.gradientAccumulation(); i++) {
                batches.add(microBatch(micro + i));
            }
            int counted = 0;
            int tokens = 0;
            for (int[] b : batches) {
                counted += train.countedTokens(b);
                tokens += train.tokens(b);
            }
            double lossValue;
            double gradNorm;
            try (Scope s = Scope.open("step " + step, MemoryCategory.ACTIVATIONS)) {
                Tensor stepLoss = null;
                for (int i = 0; i < batches.size(); i++) {
                    trainable.train(CounterRng.bits(config.seed(), micro + i));
                    try (Scope mb = Scope.open("micro-batch", MemoryCategory.ACTIVATIONS)) {
                        Tensor[] t = train.tensors(batches.get(i), device);
                        Tensor loss = trainable.model().loss(t[0], t[1], new Gemma3Model.Options(config.checkpointing(), 512), Math.max(1, counted));
                        loss.backward();
                        try (Autograd.GradMode off = Autograd.noGrad()) {
                            Tensor l = loss.detach();
                            stepLoss = mb.keep(stepLoss == null ? l.copy() : Ops.add(stepLoss, l)); // the sum outlives the micro-batch
                        }
                    }
                }
                trainable.eval();
                GradClip.GradNorm norm = config.maxGradNorm() > 0 ? GradClip.clipGradNorm(trainable.parameters(), config.maxGradNorm()) : null;
                optimizer.learningRate(schedule.lr(step));
                optimizer.step();
                optimizer.zeroGrad();
                lossValue = stepLoss.item(); // the host syncs of the step: the loss and the gradient norm
                gradNorm = norm == null ? Double.NaN : norm.value();
            }
            micro += batches.size();
            backend.synchronize();
            double seconds = (System.nanoTime() - t0) / 1e9;
            tokensSoFar += tokens;
            long done = step + 1;
            boolean log = done % Math.max(1, config.loggingSteps()) == 0 || done == total || done == 1;
            double evalLoss = shouldAct(config.evalStrategy(), config.evalSteps(), done, total) && !eval.isEmpty() ? evaluate() : Double.NaN;
            MemoryStats mem = backend.memoryStats();
            StepRecord r = new StepRecord(done, (double) micro / train.batchesPerEpoch(), lossValue, gradNorm, schedule.lr(step),
                    evalLoss, tokensSoFar, tokens / seconds,
                    mem.allocated() / (double) (1L << 30), mem.peakAllocated() / (double) (1L << 30),
                    elapsedBefore + (System.nanoTime() - startNanos) / 1e9, 0);
            if (log || r.hasEval()) {
                history.add(r);
                if (config.metricsFile()) {
                    metrics.append(r);
                }
            }
            progress.step(r, total, log);
            if (shouldAct(config.saveStrategy(), config.saveSteps(), done, total) && done < total) {
                checkpoints.save(new CheckpointStore.Position(done, micro), trainable, optimizer, config.seed(), history);
            }
            if (done >= stopAfter && done < total) {
                progress.message("stopped after step " + done);
                return history();
            }
        }
        progress.done();
        trainable.save(outputDir);
        if (config.htmlReport()) {
            HtmlReport.write(outputDir.resolve("report.html"), new dev.jtune.train.report.RunReport("jtune training report", List.of(), List.of(new dev.jtune.train.report.RunReport.Setting("settings", settings, "")), history, device.toString(), Optional.empty()));
        }
        return history();
    }

    private boolean shouldAct(TrainerConfig.SaveStrategy strategy, long every, long done, long total) {
        return switch (strategy) {
            case NO -> false;
            case STEPS -> every > 0 && done % every == 0;
            case EPOCH -> done % stepsPerEpoch() == 0;
        };
    }

    /** Micro-batch number {@code index} of the whole run (epochs follow each other). */
    private int[] microBatch(long index) {
        long epoch = index / train.batchesPerEpoch();
        return train.epoch(epoch).get((int) (index % train.batchesPerEpoch()));
    }

    /** Mean loss over the eval set's counted tokens, without recording gradients or dropout. */
    public double evaluate() {
        Batcher batcher = new Batcher(eval, config.evalBatchSize(), config.seed(), padId);
        double sum = 0;
        long count = 0;
        trainable.eval();
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (int[] b : batcher.epoch(0)) {
                int c = batcher.countedTokens(b);
                if (c == 0) {
                    continue;
                }
                try (Scope s = Scope.open("eval", MemoryCategory.ACTIVATIONS)) {
                    Tensor[] t = batcher.tensors(b, device);
                    sum += trainable.model().loss(t[0], t[1], Gemma3Model.Options.defaults(), 0).item() * c;
                    count += c;
                }
            }
        }
        return count == 0 ? Double.NaN : sum / count;
    }

    public CheckpointStore checkpoints() {
        return checkpoints;
    }
}
