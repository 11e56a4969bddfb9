package dev.jtune.engine.quant;

/** How an NF4 weight stores its block scales: plain fp32 absmax, or double-quantized (QLoRA's compress_statistics). */
public enum Nf4Scales {
    /** One fp32 absmax per 64 elements: 4.5 bits per weight. */
    FP32,
    /** The absmax themselves quantized to 8 bits in blocks of 256: about 4.127 bits per weight. */
    DOUBLE_QUANTIZED;

    public boolean doubleQuant() {
        return this == DOUBLE_QUANTIZED;
    }
}
