package dev.jtune.engine.ops;

import java.util.Random;

/** Random cross-entropy labels for tests: tokens below {@code vocab}, about a quarter ignored, at least one counted. */
final class RandomLabels {
    private RandomLabels() {
    }

    /** The first label counted. */
    static int[] firstCounted(Random rnd, int n, int vocab) {
        int[] labels = ignoringSome(rnd, n, vocab);
        labels[0] = rnd.nextInt(vocab);
        return labels;
    }

    /** A label at a random position counted. */
    static int[] oneCounted(Random rnd, int n, int vocab) {
        int[] labels = ignoringSome(rnd, n, vocab);
        labels[rnd.nextInt(n)] = rnd.nextInt(vocab);
        return labels;
    }

    private static int[] ignoringSome(Random rnd, int n, int vocab) {
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            labels[i] = rnd.nextInt(4) == 0 ? CrossEntropy.IGNORE_INDEX : rnd.nextInt(vocab);
        }
        return labels;
    }
}
