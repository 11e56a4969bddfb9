package dev.jtune.engine;

/** What an allocation is for; the allocator keeps statistics per category (the run's memory report lists them). */
public enum MemoryCategory {
    /** Dense model weights (trained or frozen). */
    WEIGHTS,
    /** NF4 codes and scales of a quantized frozen base (QLoRA). */
    QUANTIZED_WEIGHTS,
    /** LoRA adapter matrices. */
    ADAPTERS,
    /** Parameters' accumulated gradients (persistent flat buffers, or per-tensor leaf gradients). */
    GRADIENTS,
    /** What a backward pass allocates and frees before it returns: intermediate gradients, recomputed activations. */
    BACKWARD,
    /** Optimizer state: moments, 8-bit codes and absmax, parameter tables. */
    OPTIMIZER,
    /** The optimizer's fp32 master copies of trained weights (of 16-bit weights on the device; all, host-offloaded). */
    MASTER_WEIGHTS,
    ACTIVATIONS,
    WORKSPACE,
    OTHER
}
