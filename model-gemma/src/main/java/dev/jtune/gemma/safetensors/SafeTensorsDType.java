package dev.jtune.gemma.safetensors;

import dev.jtune.engine.DType;

import java.util.Optional;

/**
 * The dtypes a safetensors header may name, in the order of the reference implementation's {@code Dtype} enum
 * (huggingface/safetensors, increasing alignment). That order matters when writing: files list tensors by
 * descending dtype, then by name, so that every tensor's data is aligned to its element size.
 *
 * <p>Each carries its size in bits and the engine {@link DType} it loads as, if any. {@code BOOL} loads as
 * {@link DType#U8} (one byte per element, 0 or 1; the engine has no boolean type, so the values stay bytes).
 * The others without an engine counterpart (I8, I16, U16, U32, U64, C64 and the 4/6/8-bit float formats) are
 * accepted in headers, listed and sliced as raw bytes, but {@code load} refuses them with a clear error.
 */
public enum SafeTensorsDType {
    BOOL(8, DType.U8),
    F4(4, null),
    F6_E2M3(6, null),
    F6_E3M2(6, null),
    U8(8, DType.U8),
    I8(8, null),
    F8_E5M2(8, null),
    F8_E4M3(8, null),
    F8_E8M0(8, null),
    F8_E4M3FNUZ(8, null),
    F8_E5M2FNUZ(8, null),
    I16(16, null),
    U16(16, null),
    F16(16, DType.F16),
    BF16(16, DType.BF16),
    I32(32, DType.I32),
    U32(32, null),
    F32(32, DType.F32),
    C64(64, null),
    F64(64, DType.F64),
    I64(64, DType.I64),
    U64(64, null);

    private final int bits;
    private final DType engine;

    SafeTensorsDType(int bits, DType engine) {
        this.bits = bits;
        this.engine = engine;
    }

    /** Bits per element. */
    public int bits() {
        return bits;
    }

    /** The engine dtype this loads as, or empty when the engine has none. */
    public Optional<DType> engineDType() {
        return Optional.ofNullable(engine);
    }

    /** Whether {@code load} can turn this into an engine tensor. */
    public boolean isLoadable() {
        return engine != null;
    }

    /**
     * Bytes of {@code elements} elements. Throws {@link ArithmeticException} on overflow and
     * {@link IllegalArgumentException} when sub-byte elements do not fill whole bytes.
     */
    public long bytesFor(long elements) {
        long totalBits = Math.multiplyExact(elements, (long) bits);
        if (totalBits % 8 != 0) {
            throw new IllegalArgumentException(elements + " elements of " + this + " (" + bits
                    + " bits each) do not fill whole bytes");
        }
        return totalBits / 8;
    }

    /** The header name ("BF16", "F8_E4M3", ...), or empty when the name is not a safetensors dtype. */
    public static Optional<SafeTensorsDType> parse(String name) {
        if (name == null) {
            return Optional.empty();
        }
        for (SafeTensorsDType d : values()) {
            if (d.name().equals(name)) {
                return Optional.of(d);
            }
        }
        return Optional.empty();
    }

    /** The safetensors dtype an engine tensor of {@code dtype} is written as (NF4 has none). */
    public static SafeTensorsDType of(DType dtype) {
        return switch (dtype) {
            case F64 -> F64;
            case F32 -> F32;
            case BF16 -> BF16;
            case F16 -> F16;
            case I64 -> I64;
            case I32 -> I32;
            case U8 -> U8;
            case NF4 -> throw new IllegalArgumentException("NF4 has no safetensors dtype: write the packed codes as U8 "
                    + "bytes (with their quantization state as separate tensors)");
        };
    }
}
