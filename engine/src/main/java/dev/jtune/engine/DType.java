package dev.jtune.engine;

/**
 * Element types of a tensor. Floating types compute in fp32 (fp64 for F64) and round to nearest even on store;
 * integer types are for ids, labels and raw bytes. NF4 packs two 4-bit codes per byte (quantized frozen weights)
 * and is only ever a storage type: no arithmetic op accepts it.
 */
public enum DType {
    F64(64, true),
    F32(32, true),
    BF16(16, true),
    F16(16, true),
    I64(64, false),
    I32(32, false),
    U8(8, false),
    NF4(4, false);

    private final int bits;
    private final boolean floating;

    DType(int bits, boolean floating) {
        this.bits = bits;
        this.floating = floating;
    }

    public int bits() {
        return bits;
    }

    public boolean isFloating() {
        return floating;
    }

    /** Bytes of one element; NF4 has none (two elements share a byte), use {@link #bytesFor(long)}. */
    public int byteSize() {
        if (bits < 8) {
            throw new UnsupportedOperationException(this + " packs " + (8 / bits) + " elements per byte: use bytesFor(n)");
        }
        return bits / 8;
    }

    /** Bytes needed to store {@code elements} elements, rounding a trailing half byte up. */
    public long bytesFor(long elements) {
        return Math.ceilDiv(Math.multiplyExact(elements, (long) bits), 8L);
    }
}
