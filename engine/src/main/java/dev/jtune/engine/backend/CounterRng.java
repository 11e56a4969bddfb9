package dev.jtune.engine.backend;

/**
 * A counter-based generator: element i of a tensor filled with seed s depends only on (s, i), so every backend
 * (and every thread or CUDA block) produces the same values without sharing state. kernels/elementwise.cu
 * implements exactly these formulas, with these constants passed to it as defines.
 */
public final class CounterRng {
    /** SplitMix64's two finalizer multipliers. */
    public static final long MIX_A = 0xBF58476D1CE4E5B9L;
    public static final long MIX_B = 0x94D049BB133111EBL;
    /** The golden-ratio increment between counters. */
    public static final long GAMMA = 0x9E3779B97F4A7C15L;

    private CounterRng() {
    }

    /** SplitMix64's finalizer: a bijective 64-bit mix. */
    public static long mix(long z) {
        z = (z ^ (z >>> 30)) * MIX_A;
        z = (z ^ (z >>> 27)) * MIX_B;
        return z ^ (z >>> 31);
    }

    /** {@link #mix}'s inverse: each xor-shift undone by its repeated shifts, each multiplier by its inverse mod 2^64. */
    static long unmix(long z) {
        z = z ^ (z >>> 31) ^ (z >>> 62);
        z *= MIX_B_INVERSE;
        z = z ^ (z >>> 27) ^ (z >>> 54);
        z *= MIX_A_INVERSE;
        return z ^ (z >>> 30) ^ (z >>> 60);
    }

    private static final long MIX_A_INVERSE = inverse(MIX_A);
    private static final long MIX_B_INVERSE = inverse(MIX_B);

    /** The inverse of an odd number mod 2^64, by Newton's iteration (each step doubles the correct low bits: 3 to 96). */
    private static long inverse(long odd) {
        long x = odd;
        for (int i = 0; i < 5; i++) {
            x *= 2 - odd * x;
        }
        return x;
    }

    /**
     * The stream whose counters are {@code seed}'s from {@code n} on: {@code bits(skip(seed, n), i) == bits(seed, n + i)}
     * for every i, since counters enter {@link #bits} as {@code mix(seed) + (i + 1) GAMMA} and mix is a bijection. A
     * piece of a tensor that starts at element n draws what the whole tensor would there, without the kernel knowing.
     */
    public static long skip(long seed, long n) {
        return n == 0 ? seed : unmix(mix(seed) + n * GAMMA);
    }

    /** 64 random bits for counter {@code i} of stream {@code seed}. */
    public static long bits(long seed, long i) {
        return mix(mix(seed) + (i + 1) * GAMMA);
    }

    /** Uniform in (0, 1): the top 53 bits, offset by half a step so that 0 never occurs. */
    public static double uniform(long seed, long i) {
        return ((bits(seed, i) >>> 11) + 0.5) * 0x1.0p-53;
    }

    /** Element i of uniform [lo, hi). */
    public static double uniform(long seed, long i, double lo, double hi) {
        return lo + (hi - lo) * uniform(seed, i);
    }

    /** Element i of a normal distribution, by Box-Muller on counters 2i and 2i+1. */
    public static double normal(long seed, long i, double mean, double std) {
        double u1 = uniform(seed, 2 * i);
        double u2 = uniform(seed, 2 * i + 1);
        return mean + std * Math.sqrt(-2.0 * Math.log(u1)) * Math.cos(2.0 * Math.PI * u2);
    }
}
