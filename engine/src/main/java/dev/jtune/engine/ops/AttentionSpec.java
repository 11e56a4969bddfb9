package dev.jtune.engine.ops;

import java.util.Objects;

/**
 * How causal attention is masked and scaled: {@code window > 0} limits query i to keys j with
 * {@code i - window < j <= i} (Gemma's sliding layers); {@code scale} multiplies the scores
 * ({@code query_pre_attn_scalar^-0.5} in Gemma 3); {@code queryBlock} is how many query rows are processed at
 * once, which bounds the score memory to queryBlock x (window or sequence) per head; {@code softcap > 0} caps the
 * scaled scores at {@code softcap * tanh(score / softcap)} before the softmax (Gemma 2's attention logit cap);
 * {@code keep} whether a recomputation checkpoint keeps this attention's output for its recomputation
 * ({@link KeptAttention}; none unless asked).
 */
public record AttentionSpec(long window, double scale, int queryBlock, double softcap, KeptAttention keep) {
    /** Without soft-capping. */
    public AttentionSpec(long window, double scale, int queryBlock) {
        this(window, scale, queryBlock, 0);
    }

    /** Recomputed by checkpoints (nothing kept). */
    public AttentionSpec(long window, double scale, int queryBlock, double softcap) {
        this(window, scale, queryBlock, softcap, KeptAttention.NONE);
    }

    public AttentionSpec {
        if (softcap < 0) {
            throw new IllegalArgumentException("attention: softcap must be 0 (none) or positive, got " + softcap);
        }
        if (window < 0 || queryBlock <= 0 || !(scale > 0)) {
            throw new IllegalArgumentException("attention: window >= 0, scale > 0 and queryBlock > 0 required, got "
                    + window + ", " + scale + ", " + queryBlock);
        }
        Objects.requireNonNull(keep, "keep");
    }

    public static AttentionSpec causal(double scale) {
        return new AttentionSpec(0, scale, 512);
    }

    public static AttentionSpec sliding(long window, double scale) {
        return new AttentionSpec(window, scale, 512);
    }

    /** This spec with {@code policy} deciding whether checkpoints keep it. */
    public AttentionSpec keeping(KeptAttention policy) {
        return new AttentionSpec(window, scale, queryBlock, softcap, policy);
    }

    /** Whether a checkpoint keeps this attention over {@code tokens} positions ({@link KeptAttention#keeps}). */
    public boolean kept(long tokens) {
        return keep.keeps(window, tokens);
    }
}
