package dev.jtune.gemma.generate;

/**
 * How the next token is chosen: {@code temperature == 0} is greedy (argmax); otherwise logits are divided by the
 * temperature and sampled, restricted to the {@code topK} most likely tokens (0 = all) and to the smallest set
 * whose probability reaches {@code topP} (1 = all). {@code seed} makes sampling reproducible.
 */
public record SamplingOptions(int maxNewTokens, double temperature, int topK, double topP, long seed) {
    public SamplingOptions {
        if (maxNewTokens < 0 || temperature < 0 || topK < 0 || !(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("sampling: maxNewTokens >= 0, temperature >= 0, topK >= 0 and 0 < topP <= 1 required, got "
                    + maxNewTokens + ", " + temperature + ", " + topK + ", " + topP);
        }
    }

    public static SamplingOptions greedy(int maxNewTokens) {
        return new SamplingOptions(maxNewTokens, 0, 0, 1, 0);
    }
}
