package dev.jtune.train.args;

/**
 * {@code --offload_param}: where the decoder layers' weights live between uses (jtune's flag, DeepSpeed's name; a
 * DeepSpeed config's {@code zero_optimization.offload_param.device} says the same).
 */
public enum OffloadParam implements Choice {
    /** On the device. */
    NONE,
    /**
     * In pinned host memory, each layer copied to the device one layer ahead of its use (ZeRO-3 parameter offload on
     * one GPU): the device holds two layers' weights.
     */
    CPU
}
