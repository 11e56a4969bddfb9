package dev.jtune.engine.quant;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** bitsandbytes' dynamic maps and its kernels' code choice, against the tests' own transcription (BitsandbytesMaps). */
class DynamicMapTest {
    private final Random rnd = Seeds.random();

    @Test
    void mapsAreCreateDynamicMapBitForBit() {
        for (DynamicMap map : DynamicMap.values()) {
            float[] expected = BitsandbytesMaps.createDynamicMap(map.signed(), 7, 8);
            float[] got = map.table();
            assertEquals(DynamicMap.SIZE, got.length);
            for (int i = 0; i < DynamicMap.SIZE; i++) {
                assertEquals(Float.floatToIntBits(expected[i]), Float.floatToIntBits(got[i]), map + " entry " + i + ": " + got[i] + " vs " + expected[i]);
            }
        }
    }

    @Test
    void signedMapIsTheNf4DoubleQuantizationMap() {
        // Nf4Test checks this table against the one dumped from bitsandbytes
        float[] nf4 = Nf4.dynamicMap();
        for (int i = 0; i < DynamicMap.SIZE; i++) {
            assertEquals(Float.floatToIntBits(nf4[i]), Float.floatToIntBits(DynamicMap.SIGNED.value(i)), "entry " + i);
        }
    }

    @Test
    void mapsHaveTheirShape() {
        float[] s = DynamicMap.SIGNED.table();
        float[] u = DynamicMap.UNSIGNED.table();
        for (int i = 1; i < DynamicMap.SIZE; i++) {
            assertTrue(s[i] > s[i - 1], "signed ascending at " + i);
            assertTrue(u[i] > u[i - 1], "unsigned ascending at " + i);
        }
        assertEquals(-0.99296875f, s[0]);
        assertEquals(0f, s[127]);
        assertEquals(1f, s[255]);
        for (int j = 0; j < 127; j++) {
            assertEquals(-s[128 + j], s[126 - j], "signed map is symmetric except for 1.0");
        }
        assertEquals(0f, u[0]);
        assertEquals(1f, u[255]);
        // smallest group: 1e-6 times the midpoints of linspace(0.1, 1, 3) = {0.325, 0.775} (unsigned), of {0.1, 1} (signed)
        assertEquals(0.325e-6f, u[1], 1e-13f);
        assertEquals(0.775e-6f, u[2], 1e-13f);
        assertEquals(0.55e-6f, s[128], 1e-13f);
        assertEquals(127, DynamicMap.SIGNED.zeroCode());
        assertEquals(0, DynamicMap.UNSIGNED.zeroCode());
        for (int c = 0; c < DynamicMap.SIZE; c++) { // 8-bit AdamW's sign rule reads a code's sign from its index
            assertEquals(c < DynamicMap.SIGNED.zeroCode(), Float.floatToRawIntBits(s[c]) < 0, "sign bit of signed code " + c);
        }
        // the last group: 128 (unsigned) or 64 (signed) equal steps between 0.1 and 1
        assertEquals((0.1 + 0.9 / 256), u[127], 1e-7);
        assertEquals((1 - 0.9 / 256), u[254], 1e-7);
        assertEquals((1 - 0.9 / 128), s[254], 1e-7);
    }

    @Test
    void everyEntryQuantizesToItselfAndMidpointsSplitNeighbours() {
        for (DynamicMap map : DynamicMap.values()) {
            float[] t = map.table();
            for (int i = 0; i < DynamicMap.SIZE; i++) {
                assertEquals(i, map.quantize(t[i]), map + " entry " + i);
            }
            for (int i = 0; i + 1 < DynamicMap.SIZE; i++) {
                float mid = (t[i] + t[i + 1]) * 0.5f;
                assertEquals(i, map.quantize(Math.nextDown(mid)), map + " below the midpoint of " + i + ", " + (i + 1));
                assertEquals(i + 1, map.quantize(Math.nextUp(mid)), map + " above the midpoint of " + i + ", " + (i + 1));
                int atMid = map.quantize(mid);
                assertTrue(atMid == i || atMid == i + 1, map + " on the midpoint of " + i);
                // a double between the fp32 midpoint's neighbours decides by the fp32 midpoint too
                assertEquals(i, map.quantize(((double) mid + Math.nextDown(mid)) / 2), map + " just below midpoint " + i);
                assertEquals(i + 1, map.quantize(((double) mid + Math.nextUp(mid)) / 2), map + " just above midpoint " + i);
            }
        }
    }

    @Test
    void searchIsTheNearestCodeByFp32Midpoints() {
        for (DynamicMap map : DynamicMap.values()) {
            float[] t = map.table();
            for (int n = 0; n < 200_000; n++) {
                // uniform, and log-uniform down to 1e-8 (the map's small exponents), and beyond the ends
                double x = switch (n % 3) {
                    case 0 -> rnd.nextDouble() * 2.2 - 1.1;
                    case 1 -> Math.pow(10, -8 * rnd.nextDouble()) * (rnd.nextBoolean() ? 1 : -1);
                    default -> rnd.nextGaussian() * 1e-4;
                };
                if (!map.signed()) {
                    x = Math.abs(x);
                }
                for (double y : new double[] {x, (float) x}) {
                    int expected = BitsandbytesMaps.code(t, y);
                    int got = map.quantize(y);
                    if (BitsandbytesMaps.onMidpoint(t, y)) { // a tie (fp32 values hit the round midpoints): either neighbour
                        assertTrue(got == expected || got == expected + 1, map + " tie x = " + y + " gave " + got);
                    } else {
                        assertEquals(expected, got, map + " x = " + y);
                    }
                }
            }
            assertEquals(0, map.quantize(Float.NaN), "NaN takes code 0");
            assertEquals(255, map.quantize(7.0), "above 1: the top code");
            assertEquals(0, map.quantize(-7.0), "below the bottom: code 0");
        }
    }

    /**
     * The table-driven code equals the search for every float tried: each pattern within 64 ulps of every decision
     * point (map values and fp32 midpoints, both signs), a stride over all 2^32 patterns (NaN, infinities, subnormals
     * and both zeros included) and random ones. Where the search changes code is exactly at those decision points, so
     * the neighbourhoods test each bucket's threshold and the stride each bucket's ends.
     */
    @Test
    void theTableGivesTheSearchsCodeForEveryFloat() {
        for (DynamicMap map : DynamicMap.values()) {
            float[] t = map.table();
            for (int k = 0; k < t.length; k++) {
                float[] points = k + 1 < t.length ? new float[] {t[k], (t[k] + t[k + 1]) * 0.5f} : new float[] {t[k]};
                for (float p : points) {
                    for (float q : new float[] {p, -p}) {
                        int bits = Float.floatToRawIntBits(q);
                        for (int d = -64; d <= 64; d++) {
                            assertSame(map, Float.intBitsToFloat(bits + d));
                        }
                    }
                }
            }
            for (long bits = 0; bits <= 0xFFFF_FFFFL; bits += 257) {
                assertSame(map, Float.intBitsToFloat((int) bits));
            }
            for (float x : new float[] {0f, -0f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE,
                    -Float.MIN_VALUE, Float.MAX_VALUE, 1f, -1f, Math.nextUp(1f), Math.nextDown(-1f)}) {
                assertSame(map, x);
            }
            for (int n = 0; n < 1_000_000; n++) {
                assertSame(map, n % 2 == 0 ? Float.intBitsToFloat(rnd.nextInt()) : (float) (rnd.nextGaussian() * Math.pow(10, -7 * rnd.nextDouble())));
            }
        }
    }

    /** {@link DynamicMap#codes} (vectors where the Vector API is present, and a scalar tail) is {@code code} element by element. */
    @Test
    void codesOfAnArrayAreEachElementsCode() {
        for (DynamicMap map : DynamicMap.values()) {
            int n = 1_000_003; // not a whole number of vectors
            float[] x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = switch (i % 4) {
                    case 0 -> Float.intBitsToFloat((int) (i * 4_294_967L)); // a stride over every pattern: NaN and both zeros included
                    case 1 -> Float.intBitsToFloat(rnd.nextInt());
                    default -> (float) (rnd.nextGaussian() * Math.pow(10, -7 * rnd.nextDouble()));
                };
            }
            x[7] = Float.NaN;
            x[9] = -0f;
            int[] out = new int[n];
            map.codes(x, out, n);
            for (int i = 0; i < n; i++) {
                if (out[i] != map.code(x[i])) {
                    assertEquals(map.code(x[i]), out[i], map + " element " + i + ", x = " + x[i]);
                }
            }
        }
    }

    private static void assertSame(DynamicMap map, float x) {
        int expected = map.quantize(x);
        int got = map.code(x);
        if (expected != got) {
            assertEquals(expected, got, map + " x = " + x + " (bits " + Integer.toHexString(Float.floatToRawIntBits(x)) + ")");
        }
    }

    @Test
    void roundTripErrorIsWithinHalfAGap() {
        for (DynamicMap map : DynamicMap.values()) {
            float[] t = map.table();
            for (int n = 0; n < 100_000; n++) {
                float x = (float) (map.signed() ? rnd.nextDouble() * 2 - 1 : rnd.nextDouble());
                int c = map.quantize(x);
                float back = map.dequantize(c, 1f);
                int below = Math.max(0, c - 1);
                int above = Math.min(255, c + 1);
                double halfGap = Math.max(t[c] - t[below], t[above] - t[c]) / 2;
                // the decision point is the fp32 midpoint (a + b) * 0.5f, up to half an ulp of the sum from the exact
                // one: an x on it (0.6625f between codes 230 and 231, seed 19316754490634) may be that much past half a gap
                double slack = Math.ulp(Math.max(Math.abs(t[below]), Math.abs(t[above])));
                assertTrue(Math.abs(back - x) <= halfGap + slack, map + " x " + x + " -> code " + c + " = " + back);
                assertEquals(c, map.quantize(map.dequantize(c, 1f)), "a decoded value keeps its code");
            }
            // the scale is one fp32 product
            float absmax = 3.7f;
            for (int c = 0; c < 256; c++) {
                assertEquals(t[c] * absmax, map.dequantize(c, absmax));
            }
            // relative precision near 1: the top group's step (0.9/64 signed, 0.9/128 unsigned) halved
            float x = 0.7f;
            assertTrue(Math.abs(map.dequantize(map.quantize(x), 1f) - x) <= (map.signed() ? 0.9 / 128 : 0.9 / 256) + 1e-7);
        }
    }
}
