package dev.jtune.train.loop;

import dev.jtune.gemma.model.Gemma3Model;

/**
 * What the training loop needs, independent of how it was asked for (flags, a config file, or code embedding
 * jtune). Steps are optimizer steps; {@code maxSteps > 0} overrides {@code epochs}. {@code maxNonfiniteSteps}: steps in a
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
        int maxNonfiniteSteps) {

    public enum SaveStrategy { NO, STEPS, EPOCH }

    public TrainerConfig {
        if (batchSize <= 0 || gradientAccumulation <= 0 || evalBatchSize <= 0) {
            throw new IllegalArgumentException("batch size and gradient accumulation must be positive");
        }
        java.util.Objects.requireNonNull(checkpointing, "checkpointing");
        if (maxNonfiniteSteps < 1) {
            throw new IllegalArgumentException("maxNonfiniteSteps must be at least 1, got " + maxNonfiniteSteps);
        }
        if (maxSteps <= 0 && !(epochs > 0)) {
            throw new IllegalArgumentException("either maxSteps or epochs must be positive");
        }
    }

    /** Sensible defaults for a quick run (HF's where they exist). */
    public static TrainerConfig defaults() {
        return new TrainerConfig(3, -1, 8, 1, 5e-5, LrSchedule.Type.LINEAR, 0, 0, 0, 0.9, 0.999, 1e-8, 1.0, Gemma3Model.Checkpointing.NONE,
                500, SaveStrategy.STEPS, 500, 0, SaveStrategy.NO, 500, 42, true, true, 8, 3);
    }
}
