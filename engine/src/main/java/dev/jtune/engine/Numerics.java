package dev.jtune.engine;

/**
 * Exact conversions between Java's float/double and the 16-bit float formats, rounding to nearest even.
 * From double, a value is first rounded to float "to odd" (inexact results keep a sticky last bit), which makes
 * the second rounding exact: no double-rounding error.
 */
public final class Numerics {
    private Numerics() {
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    public static short floatToBf16(float f) {
        int x = Float.floatToRawIntBits(f);
        if ((x & 0x7FFFFFFF) > 0x7F800000) {
            return (short) ((x >>> 16) | 0x0040); // NaN stays NaN (quiet), sign kept
        }
        int rounded = x + 0x7FFF + ((x >>> 16) & 1);
        return (short) (rounded >>> 16);
    }

    public static short doubleToBf16(double d) {
        return floatToBf16(toFloatRoundToOdd(d));
    }

    public static float f16ToFloat(short bits) {
        int h = bits & 0xFFFF;
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        if (exp == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mant << 13));
        }
        if (exp == 0) {
            float v = mant * 0x1.0p-24f; // subnormal: mant units of 2^-24, exact in float
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
    }

    public static short floatToF16(float f) {
        int x = Float.floatToRawIntBits(f);
        int sign = (x >>> 16) & 0x8000;
        int abs = x & 0x7FFFFFFF;
        if (abs >= 0x7F800000) {
            if (abs > 0x7F800000) {
                return (short) (sign | 0x7E00 | ((abs >>> 13) & 0x3FF)); // quiet NaN
            }
            return (short) (sign | 0x7C00);
        }
        if (abs >= 0x477FF000) { // >= 65520: the tie above 65504 rounds to even, which is infinity
            return (short) (sign | 0x7C00);
        }
        if (abs >= 0x38800000) { // normal half (>= 2^-14)
            int mant = abs & 0x7FFFFF;
            int h = ((((abs >>> 23) - 127 + 15)) << 10) | (mant >>> 13);
            int rem = mant & 0x1FFF;
            if (rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1)) {
                h++;
            }
            return (short) (sign | h);
        }
        if (abs <= 0x33000000) { // <= 2^-25: rounds to zero (the tie at 2^-25 goes to even 0)
            return (short) sign;
        }
        int exp = abs >>> 23;
        int mant = (abs & 0x7FFFFF) | 0x800000;
        int shift = 126 - exp; // value in units of 2^-24 is mant >> shift
        int h = mant >>> shift;
        int rem = mant & ((1 << shift) - 1);
        int half = 1 << (shift - 1);
        if (rem > half || (rem == half && (h & 1) == 1)) {
            h++;
        }
        return (short) (sign | h);
    }

    public static short doubleToF16(double d) {
        return floatToF16(toFloatRoundToOdd(d));
    }

    /** Rounds to float; when inexact, forces the last mantissa bit to 1 by stepping toward {@code d}. */
    static float toFloatRoundToOdd(double d) {
        float f = (float) d;
        if (Double.isNaN(d) || (double) f == d || (Float.floatToRawIntBits(f) & 1) != 0) {
            return f;
        }
        return d > f ? Math.nextUp(f) : Math.nextDown(f);
    }

    /** Like {@link #toFloatRoundToOdd(double)} for a long, which a double cannot always hold exactly. */
    static float toFloatRoundToOdd(long v) {
        float f = (float) v; // Java rounds long to float once, to nearest even
        if ((Float.floatToRawIntBits(f) & 1) != 0) {
            return f;
        }
        if (f == 0x1.0p63f) {
            return Math.nextDown(f); // v < 2^63 always, and (long) f would saturate
        }
        long back = (long) f; // exact: a float rounded from a long is an integer, and here below 2^63
        if (back == v) {
            return f;
        }
        return v > back ? Math.nextUp(f) : Math.nextDown(f);
    }

    /** Rounds a double to what a tensor of {@code dtype} would hold, returned as double. */
    public static double roundTo(DType dtype, double v) {
        return switch (dtype) {
            case F64 -> v;
            case F32 -> (float) v;
            case BF16 -> bf16ToFloat(doubleToBf16(v));
            case F16 -> f16ToFloat(doubleToF16(v));
            case I64 -> (double) (long) v;
            case I32 -> (double) (int) v;
            case U8 -> (double) saturateU8(v);
            case NF4 -> throw new DTypeException("NF4 values are codes, not numbers: dequantize first");
        };
    }

    static int saturateU8(double v) {
        if (Double.isNaN(v)) {
            return 0;
        }
        return (int) Math.max(0, Math.min(255, (long) v));
    }
}
