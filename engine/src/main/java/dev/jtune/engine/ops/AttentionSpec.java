package dev.jtune.engine.ops;

/**
 * How causal attention is masked and scaled: {@code window > 0} limits query i to keys j with
 * {@code i - window < j <= i} (Gemma's sliding layers); {@code scale} multiplies the scores
 * ({@code query_pre_attn_scalar^-0.5} in Gemma 3); {@code queryBlock} is how many query rows are processed at
 * once, which bounds the score memory to queryBlock x (window or sequence) per head; {@code softcap > 0} caps the
 * scaled scores at {@code softcap * tanh(score / softcap)} before the softmax (Gemma 2's attention logit cap).
 */
public record AttentionSpec(long window, double scale, int queryBlock, double softcap) {
    /** Without soft-capping. */
    public AttentionSpec(long window, double scale, int queryBlock) {
        this(window, scale, queryBlock, 0);
    }

    public AttentionSpec {
        if (softcap < 0) {
            throw new IllegalArgumentException("attention: softcap must be 0 (none) or positive, got " + softcap);
        }
        if (window < 0 || queryBlock <= 0 || !(scale > 0)) {
            throw new IllegalArgumentException("attention: window >= 0, scale > 0 and queryBlock > 0 required, got "
                    + window + ", " + scale + ", " + queryBlock);
        }
    }

    public static AttentionSpec causal(double scale) {
        return new AttentionSpec(0, scale, 512);
    }

    public static AttentionSpec sliding(long window, double scale) {
        return new AttentionSpec(window, scale, 512);
    }
}
