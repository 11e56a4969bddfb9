package dev.jtune.engine.quant;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The tests' own transcription of bitsandbytes' {@code create_dynamic_map} and of the code its kernels choose, written
 * apart from {@link DynamicMap}: the Python function's structure (a list of Python floats, sorted at the end), every
 * torch fp32 operation evaluated exactly in double and rounded once to float (which is what an fp32 operation, or
 * torch's single-rounding linspace point, gives), and 10^k from the exact decimal.
 */
public final class BitsandbytesMaps {
    private BitsandbytesMaps() {
    }

    private static float f(double x) {
        return (float) x;
    }

    /** {@code create_dynamic_map(signed, max_exponent_bits, total_bits)} as torch computes it. */
    public static float[] createDynamicMap(boolean signed, int maxExponentBits, int totalBits) {
        List<Double> data = new ArrayList<>();
        int nonSignBits = totalBits - 1; // bitsandbytes: total_bits - (1 if signed else 1)
        int additionalItems = (1 << (nonSignBits - maxExponentBits)) - 1;
        int i = 0;
        for (i = 0; i < maxExponentBits; i++) {
            int fractionItems = signed ? (1 << (i + nonSignBits - maxExponentBits)) + 1 : (1 << (i + nonSignBits - maxExponentBits + 1)) + 1;
            addGroup(data, signed, maxExponentBits, i, linspace(0.1, 1.0, fractionItems));
        }
        if (additionalItems > 0) {
            addGroup(data, signed, maxExponentBits, i - 1, linspace(0.1, 1.0, additionalItems + 1));
        }
        data.add(0.0);
        data.add(1.0);
        if (data.size() != 1 << totalBits) {
            throw new AssertionError("create_dynamic_map: " + data.size() + " values");
        }
        while (data.size() < 256) {
            data.add(0.0);
        }
        Collections.sort(data);
        float[] out = new float[data.size()];
        for (int k = 0; k < out.length; k++) {
            out[k] = f(data.get(k));
        }
        return out;
    }

    /** {@code (10 ** (-(max_exponent_bits - 1) + i)) * (boundaries[:-1] + boundaries[1:]) / 2.0}, and its negation. */
    private static void addGroup(List<Double> data, boolean signed, int maxExponentBits, int i, float[] boundaries) {
        float scale = f(BigDecimal.ONE.scaleByPowerOfTen(-(maxExponentBits - 1) + i).doubleValue());
        for (int k = 0; k + 1 < boundaries.length; k++) {
            float mean = f(f((double) boundaries[k] + boundaries[k + 1]) / 2.0);
            data.add((double) f((double) scale * mean));
            if (signed) {
                data.add((double) f((double) -scale * mean));
            }
        }
    }

    /** torch.linspace in fp32: step = (end - start) / (steps - 1), point i from start below steps / 2, else from end. */
    static float[] linspace(double start, double end, int steps) {
        float s = f(start);
        float e = f(end);
        float step = f(f((double) e - s) / (steps - 1));
        float[] out = new float[steps];
        for (int i = 0; i < steps; i++) {
            out[i] = i < steps / 2 ? f(s + (double) step * i) : f(e - (double) step * (steps - 1 - i));
        }
        return out;
    }

    /**
     * The code bitsandbytes' kernels give x, away from exact ties: the number of decision points strictly below x,
     * each the fp32 midpoint {@code fp32(map[k] + map[k + 1]) * 0.5} of two neighbours (so NaN and values below the
     * first midpoint give 0, values above the last give 255).
     */
    public static int code(float[] map, double x) {
        int c = 0;
        for (int k = 0; k + 1 < map.length; k++) {
            double midpoint = (double) f((double) map[k] + map[k + 1]) * 0.5;
            if (x > midpoint) {
                c++;
            }
        }
        return c;
    }

    /** Whether x is exactly a decision point of {@link #code}, where the kernels' choice depends on their search path. */
    public static boolean onMidpoint(float[] map, double x) {
        for (int k = 0; k + 1 < map.length; k++) {
            if (x == (double) f((double) map[k] + map[k + 1]) * 0.5) {
                return true;
            }
        }
        return false;
    }
}
