package dev.jtune.train.args;

/**
 * {@code --offload_optimizer}: where the optimizer's state and update go (jtune's flag; a DeepSpeed config's
 * {@code zero_optimization.offload_optimizer.device} says the same).
 */
public enum OffloadOptimizer implements Choice {
    /** Where {@code --optim} puts it: the device, or mapped host memory for the paged optimizers. */
    NONE,
    /** Host-offloaded AdamW (ZeRO-Offload on one GPU): state and fp32 master weights in pinned host memory, the update on the host's cores. */
    CPU
}
