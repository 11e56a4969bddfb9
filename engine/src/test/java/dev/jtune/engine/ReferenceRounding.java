package dev.jtune.engine;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.RoundingMode;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Reference conversions written with exact BigDecimal arithmetic, independent of {@link Numerics}' bit tricks:
 * round-to-nearest-even to p significant bits within a binary format's exponent range (subnormals included),
 * and truncation with saturation for integer types.
 */
final class ReferenceRounding {
    private ReferenceRounding() {
    }

    /** A binary floating format: significand bits (with the implicit one), smallest normal and largest exponent. */
    enum Format {
        BF16(8, -126, 127), F16(11, -14, 15), F32(24, -126, 127);

        final int precision;
        final int minExponent;
        final int maxExponent;

        Format(int precision, int minExponent, int maxExponent) {
            this.precision = precision;
            this.minExponent = minExponent;
            this.maxExponent = maxExponent;
        }
    }

    private static final ConcurrentHashMap<Integer, BigDecimal> POW2 = new ConcurrentHashMap<>();

    static BigDecimal pow2(int k) {
        return POW2.computeIfAbsent(k, e -> e >= 0
                ? new BigDecimal(BigInteger.ONE.shiftLeft(e))
                : BigDecimal.ONE.divide(new BigDecimal(BigInteger.ONE.shiftLeft(-e)))); // 1/2^k terminates: exact
    }

    static double round(double x, Format f) {
        if (Double.isNaN(x) || Double.isInfinite(x) || x == 0) {
            return x; // NaN, infinities and signed zeros are exact in every format
        }
        return round(new BigDecimal(x), x < 0, f);
    }

    static double round(long x, Format f) {
        return x == 0 ? 0.0 : round(new BigDecimal(x), x < 0, f);
    }

    /** Rounds the exact nonzero value {@code x}; a negative value that rounds to zero gives -0.0. */
    static double round(BigDecimal x, boolean negative, Format f) {
        BigDecimal a = x.abs();
        int quantum = Math.max(floorLog2(a), f.minExponent) - (f.precision - 1);
        BigInteger units = a.multiply(pow2(-quantum)).setScale(0, RoundingMode.HALF_EVEN).toBigIntegerExact();
        BigDecimal r = new BigDecimal(units).multiply(pow2(quantum));
        double d = r.compareTo(pow2(f.maxExponent + 1)) >= 0 ? Double.POSITIVE_INFINITY : r.doubleValue();
        return negative ? -d : d;
    }

    /** floor(log2(a)) for a > 0, settled by exact comparisons with powers of two. */
    static int floorLog2(BigDecimal a) {
        int e = (int) Math.floor(a.unscaledValue().bitLength() - 1 - a.scale() * (Math.log(10) / Math.log(2)));
        while (pow2(e).compareTo(a) > 0) {
            e--;
        }
        while (pow2(e + 1).compareTo(a) <= 0) {
            e++;
        }
        return e;
    }

    /** What a floating tensor of {@code dtype} holds after storing the double {@code v}. */
    static double toFloating(DType dtype, double v) {
        return switch (dtype) {
            case F64 -> v;
            case F32 -> round(v, Format.F32);
            case BF16 -> round(v, Format.BF16);
            case F16 -> round(v, Format.F16);
            default -> throw new IllegalArgumentException(dtype + " is not floating");
        };
    }

    /** What a floating tensor of {@code dtype} holds after storing the integer {@code v}. */
    static double toFloating(DType dtype, long v) {
        return switch (dtype) {
            case F64 -> new BigDecimal(v).doubleValue(); // BigDecimal.doubleValue rounds once, to nearest even
            case F32 -> round(v, Format.F32);
            case BF16 -> round(v, Format.BF16);
            case F16 -> round(v, Format.F16);
            default -> throw new IllegalArgumentException(dtype + " is not floating");
        };
    }

    /** What an integer tensor holds after storing the double {@code v}: truncated toward zero, saturated, NaN as 0. */
    static long toInteger(DType dtype, double v) {
        if (Double.isNaN(v)) {
            return 0;
        }
        if (Double.isInfinite(v)) {
            return v > 0 ? max(dtype) : min(dtype);
        }
        BigDecimal t = new BigDecimal(v).setScale(0, RoundingMode.DOWN);
        if (t.compareTo(BigDecimal.valueOf(max(dtype))) > 0) {
            return max(dtype);
        }
        if (t.compareTo(BigDecimal.valueOf(min(dtype))) < 0) {
            return min(dtype);
        }
        return t.longValueExact();
    }

    /** What an integer tensor holds after storing the integer {@code v}: saturated. */
    static long toInteger(DType dtype, long v) {
        return Math.clamp(v, min(dtype), max(dtype));
    }

    private static long min(DType dtype) {
        return switch (dtype) {
            case I64 -> Long.MIN_VALUE;
            case I32 -> Integer.MIN_VALUE;
            case U8 -> 0;
            default -> throw new IllegalArgumentException(dtype + " is not an integer type");
        };
    }

    private static long max(DType dtype) {
        return switch (dtype) {
            case I64 -> Long.MAX_VALUE;
            case I32 -> Integer.MAX_VALUE;
            case U8 -> 255;
            default -> throw new IllegalArgumentException(dtype + " is not an integer type");
        };
    }
}
