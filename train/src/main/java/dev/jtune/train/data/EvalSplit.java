package dev.jtune.train.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A deterministic train/eval split ({@code --eval_ratio}): the indices 0..n-1 are shuffled with
 * {@code java.util.Random(seed)} ({@link Collections#shuffle(List, java.util.Random)}), the first
 * {@code max(1, floor(ratio * n))} become the eval set and the rest the training set; each part keeps the original
 * order. Same examples, ratio and seed: same split, on any JDK (both algorithms are specified).
 */
public record EvalSplit<T>(List<T> train, List<T> eval) {
    public EvalSplit {
        train = List.copyOf(train);
        eval = List.copyOf(eval);
    }

    /** How many of {@code n} items a ratio holds out: 0 for ratio 0, else at least 1. */
    public static int evalCount(int n, double ratio) {
        if (!(ratio >= 0 && ratio < 1)) {
            throw new IllegalArgumentException("eval ratio must be in [0, 1), got " + ratio);
        }
        if (ratio == 0) {
            return 0;
        }
        return Math.max(1, (int) Math.floor(ratio * n));
    }

    /**
     * Splits {@code items}.
     *
     * @throws IllegalArgumentException if the ratio is outside [0, 1) or would leave no training item
     */
    public static <T> EvalSplit<T> of(List<T> items, double ratio, long seed) {
        int n = items.size();
        int nEval = evalCount(n, ratio);
        if (nEval == 0) {
            return new EvalSplit<>(items, List.of());
        }
        if (nEval >= n) {
            throw new IllegalArgumentException("eval ratio " + ratio + " of " + n + (n == 1 ? " example" : " examples")
                    + " holds out " + nEval + ", leaving nothing to train on");
        }
        List<Integer> order = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            order.add(i);
        }
        Collections.shuffle(order, new java.util.Random(seed));
        boolean[] isEval = new boolean[n];
        for (int i = 0; i < nEval; i++) {
            isEval[order.get(i)] = true;
        }
        List<T> train = new ArrayList<>(n - nEval);
        List<T> eval = new ArrayList<>(nEval);
        for (int i = 0; i < n; i++) {
            (isEval[i] ? eval : train).add(items.get(i));
        }
        return new EvalSplit<>(train, eval);
    }
}
