package dev.jtune.train.args;

/** {@code --lr_scheduler_type}: the learning-rate schedules jtune has (HF's names and shapes). */
public enum LrSchedulerType implements Choice {
    /** Warm up, then decay linearly to 0 at the last step (HF's default). */
    LINEAR,
    /** Warm up, then half a cosine down to 0 at the last step. */
    COSINE,
    /** The learning rate throughout, no warmup. */
    CONSTANT,
    /** Warm up, then constant. */
    CONSTANT_WITH_WARMUP
}
