package dev.jtune.engine.quant;

import java.util.Arrays;
import java.util.Objects;

/**
 * bitsandbytes' 8-bit dynamic quantization maps, {@code create_dynamic_map(signed, max_exponent_bits=7,
 * total_bits=8)}: 256 ascending fp32 values in [-1, 1] ({@link #SIGNED}: 8-bit AdamW's first moment, and the
 * double quantization of NF4's scales) or [0, 1] ({@link #UNSIGNED}: 8-bit AdamW's second moment). A value is stored
 * as the index of a map entry; blockwise quantization divides a block by its absolute maximum first.
 *
 * <p><b>The values</b>, with torch's fp32 arithmetic. For exponent group {@code e = 0..6}: {@code b =
 * torch.linspace(0.1, 1, k + 1)} with {@code k = 2^e} (signed) or {@code 2^(e+1)} (unsigned) intervals, the fp32
 * midpoints {@code (b[j] + b[j+1]) / 2}, each times {@code fp32(10^(e-6))} (one fp32 product); the signed map also
 * holds each negated. Then 0 and 1.0, and the whole sorted: 127 + 127 + 2 (signed: -0.99296875 at index 0, 0 at
 * 127, 1.0 at 255) or 254 + 2 (unsigned: 0 at index 0, 1.0 at 255). torch's fp32 linspace computes {@code step =
 * (1 - 0.1f) / k} and point i as {@code 0.1f + step * i} below {@code (k + 1) / 2} and {@code 1 - step * (k - i)} from
 * there on, each rounded once (a fused multiply-add; the dumped bitsandbytes table agrees with that and differs
 * from the unfused evaluation in 42 entries). The exponent groups do not overlap, so the sort only places the
 * negative half and the two constants.
 *
 * <p><b>Quantization</b> ({@link #quantize}) is the search of bitsandbytes' optimizer kernels ({@code quantize_2D},
 * and {@code dQuantize} of blockwise quantization, which decides alike): a binary search from index 127 in steps of
 * 64, 32, ..., 1 (up while {@code x > map[pivot]}), then, between the final pivot and the neighbour last passed on
 * x's side, the one on x's side of their fp32 midpoint {@code (a + b) * 0.5f}; x exactly on that midpoint keeps the
 * pivot, so which of the two a tie takes depends on the search path (it is not "round half to even"). Away from
 * midpoints this is the nearest entry. Values beyond the ends take the end codes; NaN takes code 0.
 *
 * <p>{@link #code(float)} gives the same code from a table over the float's bit pattern (the search is monotone in x,
 * so each run of 2^16 consecutive patterns holds at most one change of code, in both maps): the host optimizer's
 * quantization, where the search's unpredictable branches cost ten times the rest of the update.
 */
public enum DynamicMap {
    /** {@code create_dynamic_map(signed=True)}: [-1, 1], zero at index 127. */
    SIGNED(true),
    /** {@code create_dynamic_map(signed=False)}: [0, 1], zero at index 0. */
    UNSIGNED(false);

    /** Entries of a map: the codes of one byte. */
    public static final int SIZE = 256;
    /** Exponent groups (bitsandbytes' {@code max_exponent_bits}). */
    private static final int EXPONENTS = 7;

    /** {@link #code(float)}'s buckets: the top 16 bits of a float's pattern. */
    static final int BUCKET_SHIFT = 16;
    private static final boolean VECTOR = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();

    private final boolean signed;
    private final float[] values;

    DynamicMap(boolean signed) {
        this.signed = signed;
        this.values = build(signed);
    }

    /**
     * {@link #code(float)}'s tables, built on its first use (not at start-up: NF4 and the GPU optimizers never need
     * them). Per bucket: the code of its first pattern (bits 0-7), the code from the change on (bits 8-15), the low
     * 16 bits of the first pattern with that code (bits 16-31; 0 where the bucket has one code). No bucket of either map
     * holds more than one change of code (the search is monotone over the numbers, and all NaNs take one code).
     */
    private static final class Buckets {
        static final int[] SIGNED_MAP = DynamicMap.SIGNED.buckets();
        static final int[] UNSIGNED_MAP = DynamicMap.UNSIGNED.buckets();
    }

    /** Whether the map covers [-1, 1] (else [0, 1]). */
    public boolean signed() {
        return signed;
    }

    /** A fresh copy of the 256 values, ascending. */
    public float[] table() {
        return values.clone();
    }

    /** The value of {@code code} (0..255). */
    public float value(int code) {
        return values[code];
    }

    /** The code of zero: 127 signed, 0 unsigned. */
    public int zeroCode() {
        return signed ? 127 : 0;
    }

    /** {@code fp32(value(code) * absmax)}: a stored code's value, as the kernels compute it. */
    public float dequantize(int code, float absmax) {
        return values[code] * absmax;
    }

    /** The code bitsandbytes' kernels choose for a normalized fp32 value (see the class comment). */
    public int quantize(float x) {
        return quantize((double) x);
    }

    /**
     * The same search for a value held in double (the cpu reference's): every comparison is against an fp32 map
     * value or fp32 midpoint, so a double that is exactly an fp32 value gets that value's code.
     */
    public int quantize(double x) {
        int pivot = SIZE / 2 - 1;
        int upperPivot = SIZE - 1;
        int lowerPivot = 0;
        // the kernels' starting bounds; they never decide (see DynamicMapTest), but are kept as published
        float lower = signed ? -1f : 0f;
        float upper = 1f;
        float val = values[pivot];
        for (int step = SIZE / 4; step > 0; step >>= 1) {
            if (x > val) {
                lowerPivot = pivot;
                lower = val;
                pivot += step;
            } else {
                upperPivot = pivot;
                upper = val;
                pivot -= step;
            }
            val = values[pivot];
        }
        if (x > val) {
            return x > (upper + val) * 0.5f ? upperPivot : pivot;
        }
        return x < (lower + val) * 0.5f ? lowerPivot : pivot;
    }

    /**
     * {@link #quantize(float)} by table: the same code for every float (DynamicMapTest checks every pattern around
     * each decision and a stride over all of them), a lookup and one comparison instead of eight unpredictable branches.
     */
    public int code(float x) {
        int bits = Float.floatToRawIntBits(x);
        int e = (signed ? Buckets.SIGNED_MAP : Buckets.UNSIGNED_MAP)[bits >>> BUCKET_SHIFT];
        return (bits & 0xFFFF) < (e >>> 16) ? e & 0xFF : (e >>> 8) & 0xFF;
    }

    /**
     * {@link #code(float)} of x[0, n) into out[0, n): the same codes, on the Vector API where present (the host
     * 8-bit optimizer's quantization of a block).
     */
    public void codes(float[] x, int[] out, int n) {
        Objects.checkFromToIndex(0, n, Math.min(x.length, out.length));
        int j = VECTOR ? VectorCodes.codes(signed ? Buckets.SIGNED_MAP : Buckets.UNSIGNED_MAP, x, out, n) : 0;
        for (; j < n; j++) {
            out[j] = code(x[j]);
        }
    }

    /** {@link #code(float)}'s table, from the search itself: per bucket its end codes and, where they differ by one, the change. */
    private int[] buckets() {
        int[] t = new int[1 << (32 - BUCKET_SHIFT)];
        for (int b = 0; b < t.length; b++) {
            int first = b << BUCKET_SHIFT;
            int last = first | ((1 << BUCKET_SHIFT) - 1);
            int c0 = quantize(Float.intBitsToFloat(first));
            int c1 = quantize(Float.intBitsToFloat(last));
            if (Float.isNaN(Float.intBitsToFloat(last))) {
                // NaN patterns: every comparison false, so one code for all (code 0: what an all-zero block's 0/0
                // takes, often in the host optimizer); the bucket may start with an infinity, which changes at the next pattern
                t[b] = Float.isNaN(Float.intBitsToFloat(first)) || c0 == c1 ? c1 << 8 | c1 : 1 << 16 | c1 << 8 | c0;
                continue;
            }
            if (c0 == c1) {
                t[b] = c0 << 8 | c0;
            } else if (Math.abs(c0 - c1) != 1) { // a map whose codes are closer than a bucket: never these two
                throw new AssertionError(this + ": bucket " + Integer.toHexString(first) + " holds codes " + c0 + " to " + c1);
            } else {
                int lo = 1; // the first low pattern with code c1, in (0, 0xFFFF]
                int hi = (1 << BUCKET_SHIFT) - 1;
                while (lo < hi) {
                    int mid = (lo + hi) >>> 1;
                    if (quantize(Float.intBitsToFloat(first | mid)) == c1) {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                t[b] = lo << 16 | c1 << 8 | c0;
            }
        }
        return t;
    }

    private static float[] build(boolean signed) {
        float[] map = new float[SIZE];
        int count = 0;
        for (int e = 0; e < EXPONENTS; e++) {
            int intervals = signed ? 1 << e : 1 << (e + 1);
            float[] b = linspace(0.1f, 1.0f, intervals + 1);
            // Python's 10 ** (e - 6): the double nearest 10^(e-6), which torch rounds to fp32 for the fp32 product
            float scale = (float) Double.parseDouble("1e" + (e - (EXPONENTS - 1)));
            for (int j = 0; j < intervals; j++) {
                float mean = (b[j] + b[j + 1]) / 2.0f;
                map[count++] = scale * mean;
                if (signed) {
                    map[count++] = -(scale * mean);
                }
            }
        }
        map[count++] = 0f;
        map[count++] = 1.0f;
        if (count != SIZE) {
            throw new AssertionError("dynamic map of " + count + " entries");
        }
        Arrays.sort(map);
        return map;
    }

    /** torch.linspace(start, end, steps) in fp32: each point rounded once, from the nearer end (see the class comment). */
    private static float[] linspace(float start, float end, int steps) {
        float step = (end - start) / (float) (steps - 1);
        float[] b = new float[steps];
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++) {
            b[i] = i < halfway ? Math.fma(step, (float) i, start) : Math.fma(-step, (float) (steps - 1 - i), end);
        }
        return b;
    }
}
