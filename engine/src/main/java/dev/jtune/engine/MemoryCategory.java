package dev.jtune.engine;

/** What an allocation is for; the allocator keeps statistics per category. */
public enum MemoryCategory {
    WEIGHTS, GRADIENTS, OPTIMIZER, ACTIVATIONS, WORKSPACE, OTHER
}
