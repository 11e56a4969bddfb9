package dev.jtune.engine.ops;

/**
 * Which attention layers a recomputation checkpoint keeps instead of recomputing ({@link AttentionSpec#keep}): their
 * output and log-sum-exp are made in the checkpoint's first run and reused by its recomputation in backward
 * ({@code Autograd.keptResults}), which then skips their forward. A global layer's forward is quadratic in the
 * sequence and its kept tensors linear (Gemma 3 270M at 8,192 tokens: 16 MiB a layer against ~0.64 ms of kernel on an
 * H100; at 32,768, 64 MiB against ~9 ms), while a sliding layer's forward costs little more than its output's size.
 */
public enum KeptAttention {
    /** No attention layer is kept: all are recomputed (plain checkpointing). */
    NONE,
    /** Layers where every query sees every earlier key (window 0, or at least the sequence) are kept. */
    GLOBAL,
    /** Every attention layer is kept. */
    ALL;

    /** Whether an attention with {@code window} (0: none) over {@code tokens} positions is kept under this policy. */
    public boolean keeps(long window, long tokens) {
        return switch (this) {
            case NONE -> false;
            case GLOBAL -> window == 0 || window >= tokens;
            case ALL -> true;
        };
    }
}
