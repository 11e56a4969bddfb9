package dev.jtune.engine;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Reads and writes single elements of packed host memory by dtype. The cpu backend computes through these;
 * floats are read exactly and written with round-to-nearest-even, integers truncate toward zero and saturate.
 */
public final class HostElements {
    private HostElements() {
    }

    public static double get(MemorySegment seg, DType dtype, long index) {
        return switch (dtype) {
            case F64 -> seg.getAtIndex(ValueLayout.JAVA_DOUBLE, index);
            case F32 -> seg.getAtIndex(ValueLayout.JAVA_FLOAT, index);
            case BF16 -> Numerics.bf16ToFloat(seg.getAtIndex(ValueLayout.JAVA_SHORT, index));
            case F16 -> Numerics.f16ToFloat(seg.getAtIndex(ValueLayout.JAVA_SHORT, index));
            case I64 -> seg.getAtIndex(ValueLayout.JAVA_LONG, index);
            case I32 -> seg.getAtIndex(ValueLayout.JAVA_INT, index);
            case U8 -> seg.get(ValueLayout.JAVA_BYTE, index) & 0xFF;
            case NF4 -> throw nf4();
        };
    }

    public static void set(MemorySegment seg, DType dtype, long index, double v) {
        switch (dtype) {
            case F64 -> seg.setAtIndex(ValueLayout.JAVA_DOUBLE, index, v);
            case F32 -> seg.setAtIndex(ValueLayout.JAVA_FLOAT, index, (float) v);
            case BF16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT, index, Numerics.doubleToBf16(v));
            case F16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT, index, Numerics.doubleToF16(v));
            case I64 -> seg.setAtIndex(ValueLayout.JAVA_LONG, index, (long) v);
            case I32 -> seg.setAtIndex(ValueLayout.JAVA_INT, index, (int) v);
            case U8 -> seg.set(ValueLayout.JAVA_BYTE, index, (byte) Numerics.saturateU8(v));
            case NF4 -> throw nf4();
        }
    }

    /** Exact integer read (I64 values beyond 2^53 do not survive a double). */
    public static long getLong(MemorySegment seg, DType dtype, long index) {
        return switch (dtype) {
            case I64 -> seg.getAtIndex(ValueLayout.JAVA_LONG, index);
            case I32 -> seg.getAtIndex(ValueLayout.JAVA_INT, index);
            case U8 -> seg.get(ValueLayout.JAVA_BYTE, index) & 0xFF;
            default -> (long) get(seg, dtype, index);
        };
    }

    public static void setLong(MemorySegment seg, DType dtype, long index, long v) {
        switch (dtype) {
            case I64 -> seg.setAtIndex(ValueLayout.JAVA_LONG, index, v);
            case I32 -> seg.setAtIndex(ValueLayout.JAVA_INT, index, (int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, v)));
            case U8 -> seg.set(ValueLayout.JAVA_BYTE, index, (byte) Math.max(0, Math.min(255, v)));
            // longs beyond 2^53 are inexact in double: round each format once from the long itself
            case F32 -> seg.setAtIndex(ValueLayout.JAVA_FLOAT, index, (float) v);
            case BF16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT, index, Numerics.floatToBf16(Numerics.toFloatRoundToOdd(v)));
            case F16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT, index, Numerics.floatToF16(Numerics.toFloatRoundToOdd(v)));
            default -> set(seg, dtype, index, (double) v);
        }
    }

    private static DTypeException nf4() {
        return new DTypeException("NF4 packs two codes per byte and has no single-element access: dequantize first");
    }
}
