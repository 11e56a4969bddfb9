package dev.jtune.train.args;

/** {@code --checkpointing_granularity}: what recomputation checkpointing keeps per layer. */
public enum CheckpointGranularity implements Choice {
    /** Each layer's input; backward recomputes the whole layer. */
    LAYER,
    /** The inputs of each layer's attention half and MLP half; backward recomputes one half at a time. */
    HALF
}
