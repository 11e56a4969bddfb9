package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.ReferenceRounding.Format;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * bf16 and f16 conversions: hand-picked edge cases (the expected value is the rule being tested), every 16-bit
 * pattern, and random values compared with the BigDecimal reference of {@link ReferenceRounding}.
 */
class NumericsTest {

    /** One conversion under test, seen through doubles: decode(encode(x)). */
    private enum Target {
        BF16(Format.BF16) {
            double fromFloat(float f) {
                return Numerics.bf16ToFloat(Numerics.floatToBf16(f));
            }

            double fromDouble(double d) {
                return Numerics.bf16ToFloat(Numerics.doubleToBf16(d));
            }
        },
        F16(Format.F16) {
            double fromFloat(float f) {
                return Numerics.f16ToFloat(Numerics.floatToF16(f));
            }

            double fromDouble(double d) {
                return Numerics.f16ToFloat(Numerics.doubleToF16(d));
            }
        };

        final Format format;

        Target(Format format) {
            this.format = format;
        }

        abstract double fromFloat(float f);

        abstract double fromDouble(double d);
    }

    /** {@code doubleOnly}: rounding the input to float would change the answer, so only the double path sees it. */
    private record Case(String name, double input, double expected, boolean doubleOnly) {
        static Case of(String name, double input, double expected) {
            return new Case(name, input, expected, false);
        }

        static Case dbl(String name, double input, double expected) {
            return new Case(name, input, expected, true);
        }
    }

    private static final double P = 0x1p-8;  // bf16 half-ulp at 1
    private static final double H = 0x1p-11; // f16 half-ulp at 1
    private static final double BF16_MAX = 0x1.FEp127;

    private static final List<Case> BF16_CASES = List.of(
            Case.of("tie rounds down to even", 1 + P, 1),
            Case.of("tie rounds up to even", 1 + 3 * P, 1 + 4 * P),
            Case.of("negative tie", -(1 + P), -1),
            Case.of("just above a tie (float)", 1 + P + 0x1p-23, 1 + 2 * P),
            Case.of("just below a tie (float)", 1 + 3 * P - 0x1p-23, 1 + 2 * P),
            Case.dbl("just above a tie (double)", 1 + P + 0x1p-40, 1 + 2 * P),
            Case.dbl("just below a tie (double)", 1 + 3 * P - 0x1p-40, 1 + 2 * P),
            Case.of("smallest subnormal", 0x1p-133, 0x1p-133),
            Case.of("largest subnormal", 127 * 0x1p-133, 127 * 0x1p-133),
            Case.of("half the smallest subnormal ties to zero", 0x1p-134, 0),
            Case.of("just above half the smallest subnormal", 0x1p-134 + 0x1p-149, 0x1p-133),
            Case.of("subnormal tie rounds up to even", 3 * 0x1p-134, 0x1p-132),
            Case.of("rounds out of the subnormal range", 0x1p-126 - 0x1p-135, 0x1p-126),
            Case.of("rounds into the subnormal range", 0x1p-126 - 0x1p-133 - 0x1p-140, 127 * 0x1p-133),
            Case.of("largest finite", BF16_MAX, BF16_MAX),
            Case.of("tie above the largest finite overflows", 0x1.FFp127, Double.POSITIVE_INFINITY),
            Case.of("just below that tie stays finite", Math.nextDown((float) 0x1.FFp127), BF16_MAX),
            Case.of("float max overflows", Float.MAX_VALUE, Double.POSITIVE_INFINITY),
            Case.dbl("double beyond float range overflows", 1e300, Double.POSITIVE_INFINITY),
            Case.dbl("negative overflow", -1e300, Double.NEGATIVE_INFINITY),
            Case.dbl("tiny double flushes to zero", 1e-300, 0),
            Case.dbl("tiny negative double keeps its sign", -1e-300, -0.0),
            Case.of("infinity", Double.POSITIVE_INFINITY, Double.POSITIVE_INFINITY),
            Case.of("negative infinity", Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY),
            Case.of("negative zero", -0.0, -0.0));

    private static final List<Case> F16_CASES = List.of(
            Case.of("tie rounds down to even", 1 + H, 1),
            Case.of("tie rounds up to even", 1 + 3 * H, 1 + 4 * H),
            Case.of("negative tie", -(1 + 3 * H), -(1 + 4 * H)),
            Case.of("just above a tie (float)", 1 + H + 0x1p-23, 1 + 2 * H),
            Case.of("just below a tie (float)", 1 + 3 * H - 0x1p-23, 1 + 2 * H),
            Case.dbl("just above a tie (double)", 1 + H + 0x1p-45, 1 + 2 * H),
            Case.dbl("just below a tie (double)", 1 + 3 * H - 0x1p-45, 1 + 2 * H),
            Case.of("smallest subnormal 2^-24", 0x1p-24, 0x1p-24),
            Case.of("2^-25 ties to zero", 0x1p-25, 0),
            Case.of("-2^-25 ties to negative zero", -0x1p-25, -0.0),
            Case.of("just above 2^-25 (float)", 0x1p-25 + 0x1p-48, 0x1p-24),
            Case.dbl("just above 2^-25 (double)", 0x1p-25 + 0x1p-70, 0x1p-24),
            Case.of("just below 2^-24 stays 2^-24", 0x1p-24 - 0x1p-48, 0x1p-24),
            Case.of("subnormal tie rounds up to even", 3 * 0x1p-25, 0x1p-23),
            Case.of("subnormal tie rounds down to even", 5 * 0x1p-25, 0x1p-23),
            Case.of("largest subnormal", 1023 * 0x1p-24, 1023 * 0x1p-24),
            Case.of("tie below the smallest normal rounds out of the subnormals", 0x1p-14 - 0x1p-25, 0x1p-14),
            Case.dbl("just below that tie stays subnormal", 0x1p-14 - 0x1p-25 - 0x1p-40, 1023 * 0x1p-24),
            Case.of("smallest normal", 0x1p-14, 0x1p-14),
            Case.of("65504 is the largest finite", 65504, 65504),
            Case.of("65519.99 rounds down", 65519.99, 65504),
            Case.of("65520 ties to infinity", 65520, Double.POSITIVE_INFINITY),
            Case.dbl("just below 65520 as a double", Math.nextDown(65520.0), 65504),
            Case.of("-65520 ties to negative infinity", -65520, Double.NEGATIVE_INFINITY),
            Case.of("infinity", Double.POSITIVE_INFINITY, Double.POSITIVE_INFINITY),
            Case.of("negative infinity", Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY),
            Case.of("negative zero", -0.0, -0.0));

    @Test
    void bf16EdgeCases() {
        checkCases(Target.BF16, BF16_CASES);
    }

    @Test
    void f16EdgeCases() {
        checkCases(Target.F16, F16_CASES);
    }

    private static void checkCases(Target target, List<Case> cases) {
        for (Case c : cases) {
            assertEquals(c.expected, ReferenceRounding.round(c.input, target.format), "reference: " + c.name);
            assertEquals(c.expected, target.fromDouble(c.input), "from double: " + c.name);
            if (!c.doubleOnly) {
                assertEquals(c.expected, target.fromFloat((float) c.input), "from float: " + c.name);
            }
        }
    }

    @Test
    void doubleRoundingIsAvoided() {
        // rounding these to float first lands exactly on a tie, which then rounds the wrong way
        double bf16Trap = 1 + P + 0x1p-40;
        double f16Trap = Math.nextDown(65520.0);
        assertEquals(1.0, Target.BF16.fromFloat((float) bf16Trap), "float path shows the trap");
        assertEquals(1 + 2 * P, Target.BF16.fromDouble(bf16Trap));
        assertEquals(Double.POSITIVE_INFINITY, Target.F16.fromFloat((float) f16Trap), "float path shows the trap");
        assertEquals(65504.0, Target.F16.fromDouble(f16Trap));
    }

    @Test
    void nanStaysNan() {
        float[] nans = {Float.NaN, Float.intBitsToFloat(0x7F800001), Float.intBitsToFloat(0xFF800001),
                Float.intBitsToFloat(0x7FC00000), Float.intBitsToFloat(0xFFFFFFFF)};
        for (float nan : nans) {
            String what = Integer.toHexString(Float.floatToRawIntBits(nan));
            for (Target t : Target.values()) {
                assertTrue(Double.isNaN(t.fromFloat(nan)), t + " from float NaN " + what);
                assertTrue(Double.isNaN(t.fromDouble(nan)), t + " from double NaN " + what);
            }
            // the sign survives (payload bits beyond the format's may not)
            assertEquals(Float.floatToRawIntBits(nan) < 0, Numerics.floatToBf16(nan) < 0, "bf16 sign of " + what);
            assertEquals(Float.floatToRawIntBits(nan) < 0, Numerics.floatToF16(nan) < 0, "f16 sign of " + what);
        }
        assertTrue(Double.isNaN(Target.BF16.fromDouble(Double.longBitsToDouble(0x7FF0000000000001L))));
        assertTrue(Double.isNaN(Target.F16.fromDouble(Double.longBitsToDouble(0x7FF0000000000001L))));
    }

    // ---------------------------------------------------------------- exhaustive

    @Test
    void everyBf16PatternRoundTrips() {
        for (int bits = 0; bits < 0x10000; bits++) {
            short b = (short) bits;
            float f = Numerics.bf16ToFloat(b);
            double expected = decode(bits, 8, 7, 127);
            String what = "bf16 0x" + Integer.toHexString(bits);
            if (Double.isNaN(expected)) {
                assertTrue(Float.isNaN(f), what);
                assertTrue(Float.isNaN(Numerics.bf16ToFloat(Numerics.floatToBf16(f))), what);
                assertTrue(Float.isNaN(Numerics.bf16ToFloat(Numerics.doubleToBf16(f))), what);
                continue;
            }
            assertEquals(expected, f, what);
            assertEquals(b, Numerics.floatToBf16(f), what);
            assertEquals(b, Numerics.doubleToBf16(f), what);
        }
    }

    @Test
    void everyF16PatternRoundTrips() {
        for (int bits = 0; bits < 0x10000; bits++) {
            short b = (short) bits;
            float f = Numerics.f16ToFloat(b);
            double expected = decode(bits, 5, 10, 15);
            String what = "f16 0x" + Integer.toHexString(bits);
            if (Double.isNaN(expected)) {
                assertTrue(Float.isNaN(f), what);
                assertTrue(Float.isNaN(Numerics.f16ToFloat(Numerics.floatToF16(f))), what);
                assertTrue(Float.isNaN(Numerics.f16ToFloat(Numerics.doubleToF16(f))), what);
                continue;
            }
            assertEquals(expected, f, what);
            assertEquals(b, Numerics.floatToF16(f), what);
            assertEquals(b, Numerics.doubleToF16(f), what);
        }
    }

    /** IEEE decoding from the definition: (-1)^s * 1.m * 2^(e-bias), or 0.m * 2^(1-bias) when e == 0. */
    private static double decode(int bits, int expBits, int mantBits, int bias) {
        int sign = bits >>> (expBits + mantBits) & 1;
        int exp = bits >>> mantBits & ((1 << expBits) - 1);
        int mant = bits & ((1 << mantBits) - 1);
        double magnitude;
        if (exp == (1 << expBits) - 1) {
            magnitude = mant == 0 ? Double.POSITIVE_INFINITY : Double.NaN;
        } else if (exp == 0) {
            magnitude = mant * Math.pow(2, 1 - bias - mantBits);
        } else {
            magnitude = ((1 << mantBits) + mant) * Math.pow(2, exp - bias - mantBits);
        }
        return sign == 1 ? -magnitude : magnitude;
    }

    // ---------------------------------------------------------------- random against the BigDecimal reference

    private static final int SAMPLES = 40_000;

    @Test
    void randomDoublesMatchReference() {
        Random rnd = Seeds.random(11);
        for (Target t : Target.values()) {
            for (int i = 0; i < SAMPLES; i++) {
                double d = i % 2 == 0 ? anywhere(rnd, t.format) : nearTie(rnd, t.format, 50);
                assertEquals(ReferenceRounding.round(d, t.format), t.fromDouble(d), () -> t + " of double " + d + " (" + Double.toHexString(d) + ")");
            }
        }
    }

    @Test
    void randomFloatsMatchReference() {
        Random rnd = Seeds.random(12);
        for (Target t : Target.values()) {
            for (int i = 0; i < SAMPLES; i++) {
                float f = (float) (i % 2 == 0 ? anywhere(rnd, t.format) : nearTie(rnd, t.format, 20));
                assertEquals(ReferenceRounding.round(f, t.format), t.fromFloat(f), () -> t + " of float " + f + " (" + Float.toHexString(f) + ")");
            }
        }
    }

    @Test
    void longsRoundOnceToEachFloatFormat() {
        Random rnd = Seeds.random(13);
        DType[] targets = {DType.F64, DType.F32, DType.BF16, DType.F16};
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(8);
            for (int i = 0; i < SAMPLES; i++) {
                long v = randomLong(rnd);
                for (DType d : targets) {
                    HostElements.setLong(seg, d, 0, v);
                    assertEquals(ReferenceRounding.toFloating(d, v), HostElements.get(seg, d, 0), () -> d + " of long " + v);
                }
            }
        }
    }

    /** Sign, exponent across the format's whole range and a little beyond, random 52-bit significand. */
    private static double anywhere(Random rnd, Format f) {
        int lo = f.minExponent - f.precision - 2;
        int e = lo + rnd.nextInt(f.maxExponent + 3 - lo);
        double v = Math.scalb(1 + rnd.nextDouble(), e);
        return rnd.nextBoolean() ? v : -v;
    }

    /** A point between two neighbours of the format, at or within 2^-(1..maxShift) ulps of their midpoint. */
    private static double nearTie(Random rnd, Format f, int maxShift) {
        int lo = f.minExponent - f.precision + 1; // ulp exponents: subnormal up to the largest binade
        int ulpExp = lo + rnd.nextInt(f.maxExponent - f.precision + 2 - lo);
        double units = (ulpExp == lo ? 0 : (1L << (f.precision - 1))) + rnd.nextInt(1 << (f.precision - 1));
        double tie = (units + 0.5) * Math.scalb(1.0, ulpExp);
        double off = switch (rnd.nextInt(3)) {
            case 0 -> 0;
            case 1 -> Math.scalb(1.0, ulpExp - 1 - rnd.nextInt(maxShift));
            default -> -Math.scalb(1.0, ulpExp - 1 - rnd.nextInt(maxShift));
        };
        double v = tie + off;
        return rnd.nextBoolean() ? v : -v;
    }

    /** Longs of every magnitude, often past 2^53, and half the time next to a tie of one of the formats. */
    private static long randomLong(Random rnd) {
        int bits = 1 + rnd.nextInt(63);
        long v = bits == 63 ? rnd.nextLong() & Long.MAX_VALUE : (1L << (bits - 1)) | (rnd.nextLong() & ((1L << (bits - 1)) - 1));
        int precision = new int[]{8, 11, 24, 53}[rnd.nextInt(4)];
        if (rnd.nextBoolean() && bits > precision + 1) {
            // keep the top `precision` bits, then a half-unit tie, nudged by -1, 0 or +1
            long head = v & (-1L << (bits - precision));
            v = head + (1L << (bits - precision - 1)) + (rnd.nextInt(3) - 1);
        }
        return rnd.nextBoolean() ? v : -v;
    }
}
