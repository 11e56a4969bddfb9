package dev.jtune.engine;

import java.util.Random;

/** Random shapes for tests: small dimensions, with 1 and odd sizes drawn often. */
final class RandomShapes {
    private static final long[] SIZES = {1, 1, 2, 3, 4, 5, 7};

    private RandomShapes() {
    }

    static long[] shape(Random rnd, int rank) {
        long[] d = new long[rank];
        for (int i = 0; i < rank; i++) {
            d[i] = SIZES[rnd.nextInt(SIZES.length)];
        }
        return d;
    }

    static long[] shape(Random rnd, int minRank, int maxRank) {
        return shape(rnd, minRank + rnd.nextInt(maxRank - minRank + 1));
    }

    /** A shape that broadcasts to {@code out}: some leading axes dropped, some axes set to 1. */
    static long[] broadcastable(Random rnd, long[] out) {
        int drop = rnd.nextInt(out.length + 1);
        long[] d = new long[out.length - drop];
        for (int i = 0; i < d.length; i++) {
            d[i] = rnd.nextInt(3) == 0 ? 1 : out[drop + i];
        }
        return d;
    }

    /** A random permutation of 0..n-1. */
    static int[] permutation(Random rnd, int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }
}
