package dev.jtune.train.args;

/**
 * {@code --preset}: a named set of flag values shipped as a JSON resource under {@code dev/jtune/train/presets/}
 * (same flag names as the command line). Precedence: defaults &lt; preset &lt; --config file &lt; command line.
 */
public enum Preset implements Choice {
    /** QLoRA (NF4 base, double quantization), LoRA r32 / alpha 64, accumulation 8, 32K tokens. */
    MEMORY_OPTIMIZED,
    /** As memory_optimized with LoRA r16 / alpha 32, accumulation 16, 16K tokens. */
    ULTRA_MEMORY_OPTIMIZED,
    /** As memory_optimized with LoRA r8 / alpha 16, accumulation 32, 8K tokens. */
    EXTREME_MEMORY_OPTIMIZED;

    /** The classpath resource holding the preset's flag values. */
    public String resource() {
        return "/dev/jtune/train/presets/" + flagValue() + ".json";
    }
}
