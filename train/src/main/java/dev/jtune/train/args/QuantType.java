package dev.jtune.train.args;

/** {@code --quant_type}: the 4-bit format of frozen weights with {@code --bits 4}. Only NF4 is built. */
public enum QuantType implements Choice {
    /** QLoRA's NormalFloat 4: 16 fixed code values, absmax per block of 64. */
    NF4
}
