package dev.jtune.train.args;

/** {@code --save_strategy} and {@code --eval_strategy}: when to save or evaluate (HF's IntervalStrategy). */
public enum IntervalStrategy implements Choice {
    NO,
    STEPS,
    EPOCH
}
