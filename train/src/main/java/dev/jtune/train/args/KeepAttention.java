package dev.jtune.train.args;

import dev.jtune.engine.ops.KeptAttention;

/**
 * {@code --keep_attention}: which layers' attention output (and log-sum-exp) gradient checkpointing keeps from the
 * forward for the recomputation in backward, which then skips their attention forward.
 */
public enum KeepAttention implements Choice {
    /** The global (full causal) layers: a forward quadratic in the sequence for a kept tensor linear in it. */
    GLOBAL(KeptAttention.GLOBAL),
    /** Every layer, the sliding ones too. */
    ALL(KeptAttention.ALL),
    /** None: every layer's attention is recomputed (HF's gradient checkpointing). */
    NONE(KeptAttention.NONE);

    private final KeptAttention policy;

    KeepAttention(KeptAttention policy) {
        this.policy = policy;
    }

    /** The engine's policy this value names. */
    public KeptAttention policy() {
        return policy;
    }
}
