package dev.jtune.engine.quant;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.ClosedException;
import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Device;
import dev.jtune.engine.DeviceMismatchException;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.fused.Nf4Kernel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

import java.util.Arrays;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * NF4 quantization on the cpu against bitsandbytes' algorithm: the tables, the decision thresholds, the packing and
 * block layout, hand-computed examples, and the error statistics of Gaussian weights. The expected values here are
 * written from bitsandbytes' published tables and algorithm (functional.py, csrc/kernels.cu), never taken from
 * {@link Nf4} itself.
 */
class Nf4Test {
    private static final Device CPU = Device.CPU;

    /** bitsandbytes' get_4bit_type("nf4"), as fp32. */
    private static final float[] BNB_NF4 = {
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
            -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
            0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
            0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

    /** The thresholds of bitsandbytes' dQuantizeNF4 tree: THRESHOLDS[c] separates code c from code c + 1. */
    private static final float[] BNB_THRESHOLDS = {
            -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
            -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
            0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
            0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

    /**
     * create_dynamic_map(signed=True) as bitsandbytes/torch produce it: the 256 fp32 values as dumped from it into
     * two independent public ports (a Fortran port of bitsandbytes' kQuantize benchmark and a Rust/candle port's
     * INT8_CODE), which agree entry for entry. Evaluating the formula in fp32 without fused multiply-adds differs from
     * this in 42 entries (torch's fp32 linspace rounds each point once, as a fused multiply-add).
     */
    private static final float[] BNB_DYNAMIC = {
            -0.992968738079071f, -0.9789062738418579f, -0.96484375f, -0.9507812261581421f,
            -0.936718761920929f, -0.922656238079071f, -0.9085937738418579f, -0.89453125f,
            -0.8804687261581421f, -0.866406261920929f, -0.852343738079071f, -0.8382812738418579f,
            -0.82421875f, -0.8101562261581421f, -0.796093761920929f, -0.782031238079071f,
            -0.7679687738418579f, -0.75390625f, -0.7398437261581421f, -0.725781261920929f,
            -0.7117187976837158f, -0.6976562738418579f, -0.68359375f, -0.6695312261581421f,
            -0.655468761920929f, -0.6414062976837158f, -0.6273437738418579f, -0.61328125f,
            -0.5992187261581421f, -0.585156261920929f, -0.5710937976837158f, -0.5570312738418579f,
            -0.54296875f, -0.5289062261581421f, -0.5148437023162842f, -0.500781238079071f,
            -0.48671871423721313f, -0.47265625f, -0.4585937261581421f, -0.44453126192092896f,
            -0.43046873807907104f, -0.4164062440395355f, -0.40234375f, -0.3882812261581421f,
            -0.37421876192092896f, -0.36015623807907104f, -0.3460937440395355f, -0.33203125f,
            -0.3179687261581421f, -0.30390626192092896f, -0.28984373807907104f, -0.2757812738418579f,
            -0.26171875f, -0.24765624105930328f, -0.23359374701976776f, -0.21953125298023224f,
            -0.20546874403953552f, -0.19140625f, -0.17734375596046448f, -0.16328124701976776f,
            -0.14921875298023224f, -0.13515624403953552f, -0.12109375f, -0.10703125596046448f,
            -0.09859374910593033f, -0.09578125923871994f, -0.09296875447034836f, -0.09015624970197678f,
            -0.08734375238418579f, -0.08453124761581421f, -0.08171875774860382f, -0.07890625298023224f,
            -0.07609374821186066f, -0.07328125089406967f, -0.07046874612569809f, -0.0676562562584877f,
            -0.06484375149011612f, -0.062031250447034836f, -0.05921875312924385f, -0.05640624836087227f,
            -0.053593751043081284f, -0.05078125f, -0.047968748956918716f, -0.04515625163912773f,
            -0.04234374687075615f, -0.039531249552965164f, -0.03671875223517418f, -0.033906251192092896f,
            -0.031093750149011612f, -0.028281250968575478f, -0.025468749925494194f, -0.02265625074505806f,
            -0.019843751564621925f, -0.017031250521540642f, -0.014218750409781933f, -0.011406250298023224f,
            -0.009718749672174454f, -0.009156249463558197f, -0.008593750186264515f, -0.008031249977648258f,
            -0.0074687497690320015f, -0.006906250026077032f, -0.006343749817460775f, -0.005781250074505806f,
            -0.0052187503315508366f, -0.0046562496572732925f, -0.004093749914318323f, -0.0035312497057020664f,
            -0.002968749962747097f, -0.002406249986961484f, -0.001843750011175871f, -0.001281249918974936f,
            -0.0009437500848434865f, -0.0008312499849125743f, -0.0007187500596046448f, -0.0006062500760890543f,
            -0.000493750034365803f, -0.0003812500217463821f, -0.0002687500382307917f, -0.00015625001105945557f,
            -8.874999912222847e-05f, -6.625000241911039e-05f, -4.374999844003469e-05f, -2.1249998098937795e-05f,
            -7.749999895168003e-06f, -3.250000190746505e-06f, -5.500000384017767e-07f, 0.0f,
            5.500000384017767e-07f, 3.250000190746505e-06f, 7.749999895168003e-06f, 2.1249998098937795e-05f,
            4.374999844003469e-05f, 6.625000241911039e-05f, 8.874999912222847e-05f, 0.00015625001105945557f,
            0.0002687500382307917f, 0.0003812500217463821f, 0.000493750034365803f, 0.0006062500760890543f,
            0.0007187500596046448f, 0.0008312499849125743f, 0.0009437500848434865f, 0.001281249918974936f,
            0.001843750011175871f, 0.002406249986961484f, 0.002968749962747097f, 0.0035312497057020664f,
            0.004093749914318323f, 0.0046562496572732925f, 0.0052187503315508366f, 0.005781250074505806f,
            0.006343749817460775f, 0.006906250026077032f, 0.0074687497690320015f, 0.008031249977648258f,
            0.008593750186264515f, 0.009156249463558197f, 0.009718749672174454f, 0.011406250298023224f,
            0.014218750409781933f, 0.017031250521540642f, 0.019843751564621925f, 0.02265625074505806f,
            0.025468749925494194f, 0.028281250968575478f, 0.031093750149011612f, 0.033906251192092896f,
            0.03671875223517418f, 0.039531249552965164f, 0.04234374687075615f, 0.04515625163912773f,
            0.047968748956918716f, 0.05078125f, 0.053593751043081284f, 0.05640624836087227f,
            0.05921875312924385f, 0.062031250447034836f, 0.06484375149011612f, 0.0676562562584877f,
            0.07046874612569809f, 0.07328125089406967f, 0.07609374821186066f, 0.07890625298023224f,
            0.08171875774860382f, 0.08453124761581421f, 0.08734375238418579f, 0.09015624970197678f,
            0.09296875447034836f, 0.09578125923871994f, 0.09859374910593033f, 0.10703125596046448f,
            0.12109375f, 0.13515624403953552f, 0.14921875298023224f, 0.16328124701976776f,
            0.17734375596046448f, 0.19140625f, 0.20546874403953552f, 0.21953125298023224f,
            0.23359374701976776f, 0.24765624105930328f, 0.26171875f, 0.2757812738418579f,
            0.28984373807907104f, 0.30390626192092896f, 0.3179687261581421f, 0.33203125f,
            0.3460937440395355f, 0.36015623807907104f, 0.37421876192092896f, 0.3882812261581421f,
            0.40234375f, 0.4164062440395355f, 0.43046873807907104f, 0.44453126192092896f,
            0.4585937261581421f, 0.47265625f, 0.48671871423721313f, 0.500781238079071f,
            0.5148437023162842f, 0.5289062261581421f, 0.54296875f, 0.5570312738418579f,
            0.5710937976837158f, 0.585156261920929f, 0.5992187261581421f, 0.61328125f,
            0.6273437738418579f, 0.6414062976837158f, 0.655468761920929f, 0.6695312261581421f,
            0.68359375f, 0.6976562738418579f, 0.7117187976837158f, 0.725781261920929f,
            0.7398437261581421f, 0.75390625f, 0.7679687738418579f, 0.782031238079071f,
            0.796093761920929f, 0.8101562261581421f, 0.82421875f, 0.8382812738418579f,
            0.852343738079071f, 0.866406261920929f, 0.8804687261581421f, 0.89453125f,
            0.9085937738418579f, 0.922656238079071f, 0.936718761920929f, 0.9507812261581421f,
            0.96484375f, 0.9789062738418579f, 0.992968738079071f, 1.0f,
    };

    private Scope scope;

    @BeforeEach
    void open(TestInfo info) {
        scope = Scope.open(info.getDisplayName());
    }

    @AfterEach
    void close() {
        scope.close();
    }

    // ------------------------------------------------------------------ helpers

    private static Tensor weight(float[] values) {
        return Tensor.fromArray(values, Shape.of(values.length), DType.F32, CPU);
    }

    /** N(0, std) weights from the counter-based generator, stored in {@code dtype}. */
    private static Tensor gaussian(Shape shape, DType dtype, long seed, double std) {
        return Tensor.normal(shape, dtype, CPU, seed, 0.0, std);
    }

    private static float[] dequantF32(Nf4Tensor q) {
        return Nf4.dequantize(q, DType.F32).toFloatArray();
    }

    /** max |w| of each block of 64, in fp32 (what the block scale must be without double quantization). */
    private static float[] blockAbsmax(float[] w) {
        float[] a = new float[Math.ceilDiv(w.length, 64)];
        for (int i = 0; i < w.length; i++) {
            a[i / 64] = Math.max(a[i / 64], Math.abs(w[i]));
        }
        return a;
    }

    private static int[] nibbles(Nf4Tensor q) {
        byte[] b = q.codes().toByteArray();
        int[] c = new int[Math.toIntExact(q.numel())];
        for (int i = 0; i < c.length; i++) {
            int v = b[i >> 1] & 0xFF;
            c[i] = (i & 1) == 0 ? v >>> 4 : v & 0xF;
        }
        return c;
    }

    private static byte[] bytes(int... v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = (byte) v[i];
        }
        return b;
    }

    // ------------------------------------------------------------------ tables

    @Test
    void codesAreBitsandbytesNf4Values() {
        assertEquals(16, Nf4.CODES.length);
        for (int c = 0; c < 16; c++) {
            assertEquals(Float.floatToIntBits(BNB_NF4[c]), Float.floatToIntBits(Nf4.CODES[c]), "code " + c);
            assertEquals(Float.floatToIntBits(BNB_NF4[c]), Float.floatToIntBits(Nf4.codes()[c]), "code " + c);
        }
        Nf4.codes()[3] = 42f; // copies: the tables in use are untouched
        assertEquals(BNB_NF4[3], Nf4.codes()[3]);
    }

    @Test
    void dynamicMapIsBitsandbytesTable() {
        float[] map = Nf4.dynamicMap();
        assertEquals(256, BNB_DYNAMIC.length);
        for (int i = 0; i < 256; i++) {
            assertEquals(Float.floatToIntBits(BNB_DYNAMIC[i]), Float.floatToIntBits(map[i]),
                    "entry " + i + ": " + map[i] + " vs bitsandbytes " + BNB_DYNAMIC[i]);
        }
        assertEquals(0f, map[127]);
        assertEquals(1f, map[255]);
        for (int j = 0; j < 127; j++) {
            assertEquals(-map[128 + j], map[126 - j], "symmetric at " + j);
        }
    }

    @Test
    void thresholdsSplitNeighboursAndTiesTakeTheLowerCode() {
        for (int c = 0; c < 15; c++) {
            float t = BNB_THRESHOLDS[c];
            // the threshold is the midpoint of the two code values, to fp32 precision
            double mid = ((double) BNB_NF4[c] + BNB_NF4[c + 1]) / 2;
            assertTrue(Math.abs(t - mid) <= Math.ulp(t), "threshold " + c + " " + t + " vs midpoint " + mid);
            assertEquals(c, Nf4.quantizeCode(t), "on threshold " + t + ": strict test, the lower code");
            assertEquals(c + 1, Nf4.quantizeCode(Math.nextUp(t)), "just above " + t);
            assertEquals(c, Nf4.quantizeCode(Math.nextDown(t)), "just below " + t);
        }
        for (int c = 0; c < 16; c++) {
            assertEquals(c, Nf4.quantizeCode(BNB_NF4[c]), "a code value maps to itself");
        }
        assertEquals(0, Nf4.quantizeCode(Float.NaN), "NaN fails every test and takes code 0");
        assertEquals(0, Nf4.quantizeCode(-5f));
        assertEquals(15, Nf4.quantizeCode(5f));
        assertEquals(7, Nf4.quantizeCode(0f));
        assertEquals(7, Nf4.quantizeCode(-0f));
    }

    /** bitsandbytes' dQuantizeNF4 comparison tree, node by node (csrc/kernels.cu). */
    private static int bnbTree(float x) {
        if (x > 0.03979014977812767f) {
            if (x > 0.3893125355243683f) {
                if (x > 0.6427869200706482f) {
                    return x > 0.8614784181118011f ? 0b1111 : 0b1110;
                }
                return x > 0.5016634166240692f ? 0b1101 : 0b1100;
            }
            if (x > 0.2035212516784668f) {
                return x > 0.2920137718319893f ? 0b1011 : 0b1010;
            }
            return x > 0.1202552504837513f ? 0b1001 : 0b1000;
        }
        if (x > -0.33967943489551544f) {
            if (x > -0.13791173323988914f) {
                return x > -0.045525018125772476f ? 0b0111 : 0b0110;
            }
            return x > -0.23460740596055984f ? 0b0101 : 0b0100;
        }
        if (x > -0.6106329262256622f) {
            return x > -0.4599952697753906f ? 0b0011 : 0b0010;
        }
        return x > -0.8480964004993439f ? 0b0001 : 0b0000;
    }

    @Test
    void codeIsTheComparisonTreesLeaf() {
        for (float t : BNB_THRESHOLDS) {
            float x = t;
            for (int k = 0; k < 8; k++) {
                x = Math.nextDown(x);
            }
            for (int k = 0; k < 17; k++, x = Math.nextUp(x)) {
                assertEquals(bnbTree(x), Nf4.quantizeCode(x), "x = " + x);
            }
        }
        for (float x : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, 1f, -1f,
                Float.MIN_VALUE, -Float.MIN_VALUE, Float.MAX_VALUE, -Float.MAX_VALUE}) {
            assertEquals(bnbTree(x), Nf4.quantizeCode(x), "x = " + x);
        }
        // a stride through every fp32 bit pattern (NaNs included)
        for (long bits = 0; bits <= 0xFFFFFFFFL; bits += 4099) {
            float x = Float.intBitsToFloat((int) bits);
            if (bnbTree(x) != Nf4.quantizeCode(x)) {
                fail("x = " + x + " (bits " + Long.toHexString(bits) + ")");
            }
        }
    }

    @Test
    void dynamicQuantizationFollowsBitsandbytesSearch() {
        // hand-traced through dQuantize's binary search on the table above
        assertEquals(0, Nf4.quantizeDynamic(-1f), "below map[0] = -0.99296875: the lowest code");
        assertEquals(127, Nf4.quantizeDynamic(0f));
        assertEquals(255, Nf4.quantizeDynamic(1f));
        assertEquals(254, Nf4.quantizeDynamic(BNB_DYNAMIC[254]));
        assertEquals(0, Nf4.quantizeDynamic(Float.NaN));
        for (int i = 0; i < 256; i++) {
            assertEquals(i, Nf4.quantizeDynamic(BNB_DYNAMIC[i]), "entry " + i + " maps to itself");
        }
        // between two entries: the nearer one, by the fp32 midpoint; the midpoint itself keeps the search's pivot
        for (int i = 1; i < 255; i++) {
            float lo = BNB_DYNAMIC[i];
            float hi = BNB_DYNAMIC[i + 1];
            float mid = (lo + hi) * 0.5f;
            assertEquals(i, Nf4.quantizeDynamic(Math.nextDown(mid)), "below the midpoint of " + i + ", " + (i + 1));
            assertEquals(i + 1, Nf4.quantizeDynamic(Math.nextUp(mid)), "above the midpoint of " + i + ", " + (i + 1));
            int atMid = Nf4.quantizeDynamic(mid);
            assertTrue(atMid == i || atMid == i + 1, "on the midpoint of " + i);
        }
    }

    // ------------------------------------------------------------------ layout

    @Test
    void elementTwoKIsTheHighNibble() {
        assertArrayEquals(bytes(0xF0), Nf4.quantize(weight(new float[] {1f, -1f}), Nf4Scales.FP32).codes().toByteArray());
        assertArrayEquals(bytes(0x0F), Nf4.quantize(weight(new float[] {-1f, 1f}), Nf4Scales.FP32).codes().toByteArray());
        assertArrayEquals(bytes(0xF7), Nf4.quantize(weight(new float[] {2f, 0f}), Nf4Scales.FP32).codes().toByteArray());
        // odd count: the last low nibble is the code of a padding 0 (code 7)
        Nf4Tensor odd = Nf4.quantize(weight(new float[] {1f, -1f, 1f}), Nf4Scales.FP32);
        assertArrayEquals(bytes(0xF0, 0xF7), odd.codes().toByteArray());
        assertEquals(Shape.of(3), odd.shape());
        assertArrayEquals(new float[] {1f, -1f, 1f}, dequantF32(odd));
    }

    @Test
    void blocksAreSixtyFourElementsAndTheLastMayBeShort() {
        for (int n : new int[] {1, 2, 63, 64, 65, 127, 128, 129, 64 * 256, 64 * 256 + 1, 64 * 257 + 63}) {
            Tensor w = gaussian(Shape.of(n), DType.F32, n, 1.0);
            Nf4Tensor q = Nf4.quantize(w, Nf4Scales.FP32);
            assertEquals(Shape.of((n + 1) / 2), q.codes().shape(), "n=" + n);
            assertEquals(Shape.of(Math.ceilDiv(n, 64)), q.absmax().shape(), "n=" + n);
            assertArrayEquals(blockAbsmax(w.toFloatArray()), q.absmax().toFloatArray(), "n=" + n);
            Nf4Tensor dq = Nf4.quantize(w, Nf4Scales.DOUBLE_QUANTIZED);
            assertEquals(Shape.of(Math.ceilDiv(n, 64)), dq.absmaxCodes().shape(), "n=" + n);
            assertEquals(Shape.of(Math.ceilDiv(Math.ceilDiv(n, 64), 256)), dq.absmax2().shape(), "n=" + n);
            assertArrayEquals(q.codes().toByteArray(), dq.codes().toByteArray(), "the codes do not depend on the scales' storage");
        }
    }

    // ------------------------------------------------------------------ hand-computed examples

    /**
     * Worked by hand from bitsandbytes' algorithm: block 0 has absmax 4 (so x * (1/4) is exact) and one element per
     * decision region tried; block 1 is a short block of 3 elements (and an odd total, so a padding nibble).
     */
    @Test
    void handComputedExample() {
        float[] w = new float[67];
        float[] head = {-4.0f, 2.0f, 2.1f, 0.0f, -0.2f, 0.15f, 0.16f, 3.5f, 3.4f, -3.4f, -3.3f, 0.6f};
        System.arraycopy(head, 0, w, 0, head.length);
        Arrays.fill(w, head.length, 64, 1.0f);
        w[64] = 0.3f;
        w[65] = -0.1f;
        w[66] = 0.0f;
        // x/4: -1 -> 0; 0.5 -> 12 (<= 0.50166); 0.525 -> 13; 0 -> 7; -0.05 -> 6 (<= -0.045525); 0.0375 -> 7
        // (<= 0.039790); 0.04 -> 8; 0.875 -> 15; 0.85 -> 14 (<= 0.86148); -0.85 -> 0 (<= -0.84810); -0.825 -> 1;
        // 0.15 -> 9; 0.25 -> 10 (x52). Block 1: 0.3 * (1/0.3f) ~ 1 -> 15; -0.1 * (1/0.3f) = -0.3333 -> 4
        // (> -0.33968, <= -0.23461); 0 -> 7; padding 0 -> 7.
        byte[] expected = new byte[34];
        byte[] first = bytes(0x0C, 0xD7, 0x67, 0x8F, 0xE0, 0x19);
        System.arraycopy(first, 0, expected, 0, first.length);
        Arrays.fill(expected, first.length, 32, (byte) 0xAA);
        expected[32] = (byte) 0xF4;
        expected[33] = (byte) 0x77;
        Nf4Tensor q = Nf4.quantize(weight(w), Nf4Scales.FP32);
        assertArrayEquals(expected, q.codes().toByteArray());
        assertArrayEquals(new float[] {4.0f, 0.3f}, q.absmax().toFloatArray());

        float[] want = new float[67];
        int[] codes0 = {0, 12, 13, 7, 6, 7, 8, 15, 14, 0, 1, 9};
        for (int i = 0; i < 64; i++) {
            want[i] = (i < codes0.length ? BNB_NF4[codes0[i]] : 0.24611230194568634f) * 4.0f;
        }
        want[64] = 1.0f * 0.3f;
        want[65] = -0.28444138169288635f * 0.3f;
        want[66] = 0.0f;
        float[] got = dequantF32(q);
        for (int i = 0; i < 67; i++) {
            assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]), "element " + i);
        }
    }

    /**
     * Double quantization by hand: three blocks with absmax 1, 2 and 3. offset = mean = 2, centred scales -1, 0, 1,
     * absmax2 = 1, and dQuantize gives -1 -> code 0 (below the map's lowest entry -0.99296875), 0 -> 127, 1 -> 255.
     * Dequantized scales: fp32(-0.992968738079071 + 2), 2, 3.
     */
    @Test
    void handComputedDoubleQuantization() {
        float[] w = new float[192];
        w[0] = 1f;
        w[64] = 2f;
        w[128] = 3f;
        Nf4Tensor q = Nf4.quantize(weight(w), Nf4Scales.DOUBLE_QUANTIZED);
        assertTrue(q.doubleQuant());
        assertNull(q.absmax());
        assertEquals(2.0f, q.offset());
        assertArrayEquals(bytes(0, 127, 255), q.absmaxCodes().toByteArray());
        assertArrayEquals(new float[] {1f}, q.absmax2().toFloatArray());
        byte[] codes = q.codes().toByteArray();
        for (int k = 0; k < 96; k++) {
            assertEquals(k % 32 == 0 ? (byte) 0xF7 : (byte) 0x77, codes[k], "byte " + k);
        }
        float scale0 = -0.992968738079071f * 1f + 2f;
        float[] got = dequantF32(q);
        assertEquals(scale0, got[0]);
        assertEquals(1.0070312f, scale0, 1e-6f);
        assertEquals(2f, got[64]);
        assertEquals(3f, got[128]);
        for (int i = 0; i < 192; i++) {
            if (i % 64 != 0) {
                assertEquals(0f, got[i], "element " + i);
            }
        }
    }

    // ------------------------------------------------------------------ exactness

    @Test
    void everyCodeValueRoundTripsExactly() {
        float[] w = new float[32];
        for (int c = 0; c < 16; c++) {
            w[c] = BNB_NF4[c] * 0.5f;        // absmax 0.5: x * 2 is exact
            w[16 + c] = BNB_NF4[15 - c] * 0.5f;
        }
        Nf4Tensor q = Nf4.quantize(weight(w), Nf4Scales.FP32);
        assertArrayEquals(bytes(0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10),
                q.codes().toByteArray());
        assertArrayEquals(w, dequantF32(q));
        for (DType t : new DType[] {DType.BF16, DType.F16}) {
            double[] got = Nf4.dequantize(q, t).toDoubleArray();
            for (int i = 0; i < w.length; i++) {
                assertEquals(Numerics.roundTo(t, w[i]), got[i], t + " element " + i);
            }
        }
    }

    @Test
    void zerosTakeTheZeroCode() {
        float[] w = new float[128];
        for (int i = 0; i < 64; i += 3) {
            w[i] = (i % 2 == 0 ? 1 : -1) * (0.1f + i);
        }
        // block 1 is all zeros
        Nf4Tensor q = Nf4.quantize(weight(w), Nf4Scales.FP32);
        int[] c = nibbles(q);
        float[] got = dequantF32(q);
        for (int i = 0; i < 64; i++) {
            if (w[i] == 0f) {
                assertEquals(7, c[i], "zero element " + i);
                assertEquals(Float.floatToIntBits(0f), Float.floatToIntBits(got[i]), "zero element " + i + " is +0");
            }
        }
        // an all-zero block: absmax 0, and bitsandbytes' 0 * (1/0) = NaN falls through the tree to code 0 (-1), which
        // dequantizes to -1 * 0 = -0: still zero
        assertEquals(0f, q.absmax().toFloatArray()[1]);
        for (int i = 64; i < 128; i++) {
            assertEquals(0, c[i], "element " + i);
            assertTrue(got[i] == 0f, "element " + i + ": " + got[i]);
        }
        // double-quantized, the same codes 0 dequantize to -1 * (the block's rebuilt scale), and that scale is 0 only
        // to within the 8-bit dynamic map's error: here absmax = [63.1, 0], offset 31.55, absmax2 31.55, and the
        // zero scale becomes fp32(-0.99296875 * 31.55 + 31.55) = 0.222, as in bitsandbytes
        Nf4Tensor dq = Nf4.quantize(weight(w), Nf4Scales.DOUBLE_QUANTIZED);
        float absmax2 = dq.absmax2().toFloatArray()[0];
        float[] dgot = dequantF32(dq);
        for (int i = 64; i < 128; i++) {
            assertEquals(0, nibbles(dq)[i]);
            assertTrue(Math.abs(dgot[i]) <= 0.00704f * absmax2, "double-quantized zero block, element " + i + ": " + dgot[i]);
        }
    }

    @Test
    void largestElementOfEachBlockReconstructsExactly() {
        Tensor w = gaussian(Shape.of(37, 129), DType.F32, 7, 0.02);
        float[] v = w.toFloatArray();
        Nf4Tensor q = Nf4.quantize(w, Nf4Scales.FP32);
        float[] absmax = q.absmax().toFloatArray();
        float[] got = dequantF32(q);
        for (int b = 0; b < absmax.length; b++) {
            int arg = b * 64;
            for (int i = b * 64; i < Math.min(v.length, b * 64 + 64); i++) {
                if (Math.abs(v[i]) > Math.abs(v[arg])) {
                    arg = i;
                }
            }
            assertEquals(Math.abs(v[arg]), absmax[b], "block " + b);
            assertEquals(v[arg], got[arg], "block " + b + ": NF4 has +-1, so the absmax element is exact");
        }
    }

    // ------------------------------------------------------------------ statistics

    /**
     * Gaussian weights of several shapes (numel odd, not a multiple of 64 or of 64 * 256) and dtypes: the mean
     * absolute error relative to the block's absmax. Each element takes the nearest code, and the codes are at most
     * 0.304 apart (-1 to -0.696), so no element is off by more than 0.152 of its absmax; Gaussian values mostly fall
     * where the codes are 0.08 to 0.16 apart, for a mean error of a quarter of that: measured 0.028.
     */
    @Test
    void gaussianRoundTripErrorIsWithinTheCodeSpacing() {
        Shape[] shapes = {Shape.of(64, 64), Shape.of(7, 9), Shape.of(1, 1), Shape.of(17, 33), Shape.of(3, 1000),
                Shape.of(200003), Shape.of(513, 129)};
        for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            for (Nf4Scales scales : Nf4Scales.values()) {
                boolean dq = scales.doubleQuant();
                double sum = 0;
                long count = 0;
                double worst = 0;
                for (Shape shape : shapes) {
                    Tensor w = gaussian(shape, dtype, shape.numel() * 31 + dtype.ordinal(), 0.02);
                    float[] v = w.toFloatArray();
                    float[] absmax = blockAbsmax(v);
                    Nf4Tensor q = Nf4.quantize(w, scales);
                    assertEquals(shape, q.shape());
                    assertEquals(dtype, q.dtype());
                    float[] got = dequantF32(q);
                    for (int i = 0; i < v.length; i++) {
                        float a = absmax[i / 64];
                        double rel = a == 0 ? 0 : Math.abs(v[i] - got[i]) / a;
                        sum += rel;
                        count++;
                        worst = Math.max(worst, rel);
                        if (!dq) {
                            // the chosen code is the nearest (to the fp32 midpoint): never beyond half the local gap
                            double x = v[i] / (double) a;
                            double best = Double.MAX_VALUE;
                            for (float c : BNB_NF4) {
                                best = Math.min(best, Math.abs(x - c));
                            }
                            if (rel > best + 1e-6) {
                                fail(shape + " element " + i + ": error " + rel + " but the nearest code is " + best + " away");
                            }
                        }
                    }
                    // the 16-bit outputs are the fp32 result rounded once
                    short[] bf = bits(Nf4.dequantize(q, DType.BF16));
                    short[] hf = bits(Nf4.dequantize(q, DType.F16));
                    for (int i = 0; i < got.length; i++) {
                        if (Numerics.floatToBf16(got[i]) != bf[i] || Numerics.floatToF16(got[i]) != hf[i]) {
                            fail(shape + " element " + i + ": the 16-bit outputs are not the fp32 result rounded once");
                        }
                    }
                }
                double mean = sum / count;
                System.out.printf(Locale.ROOT, "NF4 round trip, %s weights, double quant %s: mean |w - deq| / absmax = %.5f, max %.4f (%d elements)%n",
                        dtype, dq, mean, worst, count);
                assertTrue(mean > 0.005 && mean < 0.04, "mean relative error " + mean);
                // half the widest gap, plus (double-quantized) the scale's own error, below 1% (see below)
                double bound = (1 - 0.6961928009986877) / 2 + (dq ? 0.01 : 1e-6);
                assertTrue(worst <= bound, "max relative error " + worst + " exceeds " + bound);
            }
        }
    }

    private static short[] bits(Tensor t) {
        byte[] b = t.toByteArray();
        short[] s = new short[b.length / 2];
        for (int i = 0; i < s.length; i++) {
            s[i] = (short) ((b[2 * i] & 0xFF) | (b[2 * i + 1] << 8));
        }
        return s;
    }

    @Test
    void doubleQuantizedScalesAreCloseToTheTrueAbsmax() {
        Tensor w = gaussian(Shape.of(640, 1152), DType.BF16, 11, 0.02);
        Nf4Tensor plain = Nf4.quantize(w, Nf4Scales.FP32);
        Nf4Tensor dq = Nf4.quantize(w, Nf4Scales.DOUBLE_QUANTIZED);
        float[] absmax = plain.absmax().toFloatArray();
        byte[] codes2 = dq.absmaxCodes().toByteArray();
        float[] absmax2 = dq.absmax2().toFloatArray();
        double sum = 0;
        double worst = 0;
        for (int b = 0; b < absmax.length; b++) {
            float scale = Nf4.doubleQuantScale(codes2[b], absmax2[b / 256], dq.offset());
            double rel = Math.abs(scale - absmax[b]) / absmax[b];
            sum += rel;
            worst = Math.max(worst, rel);
        }
        System.out.printf(Locale.ROOT, "double quantization of %d block scales: mean relative error %.2e, max %.2e%n",
                absmax.length, sum / absmax.length, worst);
        assertTrue(worst < 0.01, "max relative error of a double-quantized scale " + worst);
        // the 8-bit codes' own error: within half a gap of the dynamic map (< 0.0071 of absmax2 near 1)
        for (int b = 0; b < absmax.length; b++) {
            float scale = Nf4.doubleQuantScale(codes2[b], absmax2[b / 256], dq.offset());
            assertTrue(Math.abs(scale - absmax[b]) <= 0.0071 * absmax2[b / 256] + 1e-9, "block " + b);
        }
    }

    @Test
    void bitsPerWeight() {
        Tensor w = gaussian(Shape.of(1024, 1024), DType.BF16, 3, 0.02);
        Nf4Tensor plain = Nf4.quantize(w, Nf4Scales.FP32);
        Nf4Tensor dq = Nf4.quantize(w, Nf4Scales.DOUBLE_QUANTIZED);
        System.out.printf(Locale.ROOT, "bits per weight: %.4f plain, %.4f double-quantized%n", plain.bitsPerWeight(), dq.bitsPerWeight());
        assertEquals(4.5, plain.bitsPerWeight(), 1e-12);
        assertEquals(524288 + 4 * 16384, plain.storageBytes());
        assertTrue(dq.bitsPerWeight() <= 4.13, "double-quantized " + dq.bitsPerWeight());
        assertEquals(524288 + 16384 + 4 * 64 + 4, dq.storageBytes());
    }

    // ------------------------------------------------------------------ inputs

    @Test
    void sixteenBitWeightsQuantizeAsTheirExactFloatValues() {
        for (DType t : new DType[] {DType.BF16, DType.F16}) {
            Tensor w = gaussian(Shape.of(33, 65), t, 5, 0.5);
            Nf4Tensor a = Nf4.quantize(w, Nf4Scales.DOUBLE_QUANTIZED);
            Nf4Tensor b = Nf4.quantize(w.cast(DType.F32), Nf4Scales.DOUBLE_QUANTIZED);
            assertArrayEquals(b.codes().toByteArray(), a.codes().toByteArray(), t.toString());
            assertArrayEquals(b.absmaxCodes().toByteArray(), a.absmaxCodes().toByteArray(), t.toString());
            assertEquals(b.offset(), a.offset());
            assertEquals(t, a.dtype());
        }
    }

    @Test
    void aStridedWeightQuantizesLikeItsContiguousCopy() {
        Tensor w = gaussian(Shape.of(96, 40), DType.F32, 9, 1.0);
        Tensor t = w.transpose(0, 1);
        assertFalse(t.isContiguous());
        Nf4Tensor a = Nf4.quantize(t, Nf4Scales.FP32);
        Nf4Tensor b = Nf4.quantize(t.contiguous(), Nf4Scales.FP32);
        assertEquals(Shape.of(40, 96), a.shape());
        assertArrayEquals(b.codes().toByteArray(), a.codes().toByteArray());
        assertArrayEquals(b.absmax().toFloatArray(), a.absmax().toFloatArray());
    }

    /** More than one host chunk (4M elements): the tail quantizes like the same elements on their own. */
    @Test
    void weightsLargerThanOneHostChunk() {
        int chunk = 1 << 22;
        Tensor w = gaussian(Shape.of(chunk + 1000 + 3), DType.BF16, 13, 0.02);
        Nf4Tensor q = Nf4.quantize(w, Nf4Scales.DOUBLE_QUANTIZED);
        Nf4Tensor tail = Nf4.quantize(w.slice(0, chunk, chunk + 1003), Nf4Scales.FP32);
        byte[] all = q.codes().toByteArray();
        byte[] t = tail.codes().toByteArray();
        assertArrayEquals(t, Arrays.copyOfRange(all, chunk / 2, all.length));
        Nf4Tensor plain = Nf4.quantize(w, Nf4Scales.FP32);
        float[] absmax = plain.absmax().toFloatArray();
        assertArrayEquals(tail.absmax().toFloatArray(), Arrays.copyOfRange(absmax, chunk / 64, absmax.length));
    }

    @Test
    void rejectsOtherWeightDtypes() {
        Tensor ints = Tensor.fromArray(new int[] {1, 2}, Shape.of(2), DType.I32, CPU);
        assertThrows(DTypeException.class, () -> Nf4.quantize(ints, Nf4Scales.FP32));
        Tensor f64 = Tensor.fromArray(new double[] {1, 2}, Shape.of(2), DType.F64, CPU);
        assertThrows(DTypeException.class, () -> Nf4.quantize(f64, Nf4Scales.FP32));
    }

    @Test
    void emptyWeight() {
        Nf4Tensor q = Nf4.quantize(Tensor.empty(Shape.of(0, 5), DType.F32, CPU), Nf4Scales.DOUBLE_QUANTIZED);
        assertEquals(0, q.numel());
        assertEquals(Shape.of(0, 5), Nf4.dequantize(q, DType.BF16).shape());
    }

    // ------------------------------------------------------------------ dequantizeInto and the SPI

    @Test
    void dequantizeIntoChecksItsArguments() {
        Nf4Tensor q = Nf4.quantize(gaussian(Shape.of(8, 16), DType.F32, 1, 1), Nf4Scales.FP32);
        assertThrows(ShapeException.class, () -> Nf4.dequantizeInto(q, Tensor.empty(Shape.of(16, 8), DType.F32, CPU)));
        assertThrows(ShapeException.class, () -> Nf4.dequantizeInto(q, Tensor.empty(Shape.of(16, 8), DType.F32, CPU).transpose(0, 1)));
        assertThrows(DTypeException.class, () -> Nf4.dequantizeInto(q, Tensor.empty(Shape.of(8, 16), DType.F64, CPU)));
        assertThrows(DTypeException.class, () -> Nf4.dequantize(q, DType.I32));
        assertThrows(DeviceMismatchException.class, () -> Nf4.dequantizeInto(q, Tensor.empty(Shape.of(8, 16), DType.F32, Device.META)));
        q.close();
        assertTrue(q.isClosed());
        assertThrows(ClosedException.class, () -> Nf4.dequantize(q, DType.F32));
    }

    @Test
    void nf4TensorValidatesItsParts() {
        Tensor codes = Tensor.zeros(Shape.of(4), DType.U8, CPU);
        Tensor absmax = Tensor.zeros(Shape.of(1), DType.F32, CPU);
        Tensor codes2 = Tensor.zeros(Shape.of(1), DType.U8, CPU);
        Tensor absmax2 = Tensor.zeros(Shape.of(1), DType.F32, CPU);
        assertNotNull(new Nf4Tensor(Shape.of(8), DType.F32, codes, absmax, null, null, 0f));
        assertNotNull(new Nf4Tensor(Shape.of(7), DType.F32, codes, null, codes2, absmax2, 0f));
        assertThrows(IllegalArgumentException.class, () -> new Nf4Tensor(Shape.of(8), DType.F32, codes, absmax, codes2, absmax2, 0f));
        assertThrows(IllegalArgumentException.class, () -> new Nf4Tensor(Shape.of(8), DType.F32, codes, null, codes2, null, 0f));
        assertThrows(IllegalArgumentException.class, () -> new Nf4Tensor(Shape.of(8), DType.F32, codes, null, null, null, 0f));
        assertThrows(ShapeException.class, () -> new Nf4Tensor(Shape.of(9), DType.F32, codes, absmax, null, null, 0f));
        assertThrows(ShapeException.class, () -> new Nf4Tensor(Shape.of(8), DType.F32, absmax, absmax, null, null, 0f));
        Tensor metaAbsmax = Tensor.zeros(Shape.of(1), DType.F32, Device.META);
        assertThrows(DeviceMismatchException.class, () -> new Nf4Tensor(Shape.of(8), DType.F32, codes, metaAbsmax, null, null, 0f));
    }

    /** The backend call itself with every input a view at an odd offset, and an output between other data. */
    @Test
    void backendDequantizesViewsAtOffsets() {
        for (Nf4Scales scales : Nf4Scales.values()) {
            boolean doubleQuant = scales.doubleQuant();
            int n = 64 * 300 + 45;
            Nf4Tensor q = Nf4.quantize(gaussian(Shape.of(n), DType.F32, 17, 1.0), scales);
            float[] want = dequantF32(q);
            Tensor codes = shifted(q.codes());
            Tensor absmax = q.absmax() == null ? null : shifted(q.absmax());
            Tensor codes2 = q.absmaxCodes() == null ? null : shifted(q.absmaxCodes());
            Tensor absmax2 = q.absmax2() == null ? null : shifted(q.absmax2());
            Tensor whole = Tensor.full(Shape.of(n + 2), 7.0, DType.F32, CPU);
            Tensor out = whole.slice(0, 1, n + 1);
            CpuBackend.instance().kernels(Nf4Kernel.OP).dequantize(codes, absmax, codes2, absmax2, q.offset(), out);
            float[] got = whole.toFloatArray();
            assertEquals(7f, got[0]);
            assertEquals(7f, got[n + 1]);
            assertArrayEquals(want, Arrays.copyOfRange(got, 1, n + 1), "double quant " + doubleQuant);
        }
    }

    /** The same values, contiguous, one element into a larger storage. */
    private static Tensor shifted(Tensor t) {
        Tensor big = Tensor.zeros(Shape.of(t.numel() + 1), t.dtype(), CPU);
        Tensor view = big.slice(0, 1, t.numel() + 1);
        Backends.of(view).copy(t, view);
        return view;
    }

    // ------------------------------------------------------------------ devices and scopes

    @Test
    void metaWeightsGetSizesAndNoData() {
        Tensor w = Tensor.empty(Shape.of(1000, 33), DType.BF16, Device.META);
        for (Nf4Scales scales : Nf4Scales.values()) {
            boolean dq = scales.doubleQuant();
            Nf4Tensor q = Nf4.quantize(w, scales);
            Nf4Tensor real = Nf4.quantize(Tensor.zeros(Shape.of(1000, 33), DType.BF16, CPU), scales);
            assertEquals(Device.META, q.device());
            assertEquals(real.storageBytes(), q.storageBytes());
            Tensor out = Nf4.dequantize(q, DType.BF16);
            assertEquals(Device.META, out.device());
            assertEquals(Shape.of(1000, 33), out.shape());
        }
    }

    @Test
    void keepMovesTheTensorsOutOfAnInnerScope() {
        Tensor w = gaussian(Shape.of(100), DType.F32, 2, 1);
        Nf4Tensor q;
        try (Scope inner = Scope.open("inner")) {
            q = Nf4.quantize(w, Nf4Scales.DOUBLE_QUANTIZED).keep(inner);
            Nf4Tensor dropped = Nf4.quantize(w, Nf4Scales.FP32);
            inner.close();
            assertTrue(dropped.isClosed());
        }
        assertFalse(q.isClosed());
        assertEquals(100, dequantF32(q).length);
        q.close();
        assertTrue(q.codes().isClosed() && q.absmaxCodes().isClosed() && q.absmax2().isClosed());
    }
}
