package dev.jtune.engine.cpu;

import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuLoops.Flat;

import java.util.stream.LongStream;

/** Cross-entropy over the vocabulary, read straight from the logits' dtype, its backward, and token counting. */
final class CpuLoss {
    private CpuLoss() {
    }

    /**
     * {@code lse[i] = m + log sum_v exp(logits[i, v] - m)} with m the row's max (an infinite max is the lse itself,
     * as torch.logsumexp), {@code loss[i] = lse[i] - logits[i, label]}, or 0 on an ignored row. A label that is
     * neither ignoreIndex nor in [0, V) is an error, raised before anything is written.
     */
    static void crossEntropy(Tensor logits, Tensor labels, int ignoreIndex, Tensor loss, Tensor lse) {
        long vocab = logits.dim(-1);
        long[] label = checkedLabels("crossEntropy", labels, ignoreIndex, vocab);
        Flat xs = Flat.of(logits);
        Flat losses = Flat.of(loss);
        Flat lses = Flat.of(lse);
        CpuLoops.rows(label.length, i -> {
            long first = i * vocab;
            double max = Double.NEGATIVE_INFINITY;
            for (long v = 0; v < vocab; v++) {
                max = Math.max(max, xs.get(first + v));
            }
            double l;
            if (Double.isInfinite(max)) {
                l = max;
            } else {
                double sum = 0;
                for (long v = 0; v < vocab; v++) {
                    sum += Math.exp(xs.get(first + v) - max);
                }
                l = max + Math.log(sum);
            }
            lses.set(i, l);
            long y = label[(int) i];
            losses.set(i, y == ignoreIndex ? 0.0 : l - xs.get(first + y));
        });
    }

    /**
     * {@code gradLogits[i, v] = scale[0] * (exp(logits[i, v] - lse[i]) - (v == label))}, 0 on ignored rows; each
     * element is read before it is written, so gradLogits may be logits.
     */
    static void crossEntropyBackward(Tensor logits, Tensor labels, Tensor lse, int ignoreIndex, Tensor scale, Tensor gradLogits) {
        long vocab = logits.dim(-1);
        long[] label = checkedLabels("crossEntropyBackward", labels, ignoreIndex, vocab);
        double factor = Flat.of(scale).get(0);
        Flat xs = Flat.of(logits);
        Flat lses = Flat.of(lse);
        Flat gs = Flat.of(gradLogits);
        CpuLoops.rows(label.length, i -> {
            long first = i * vocab;
            long y = label[(int) i];
            if (y == ignoreIndex) {
                gs.zero(first, vocab);
                return;
            }
            double l = lses.get(i);
            for (long v = 0; v < vocab; v++) {
                double p = Math.exp(xs.get(first + v) - l);
                gs.set(first + v, factor * (v == y ? p - 1 : p));
            }
        });
    }

    /** {@code out[0] = count of labels != value}, exact as an integer, then stored (F32 holds it exactly up to 2^24). */
    static void countNotEqual(Tensor labels, int value, Tensor out) {
        Flat ls = Flat.of(labels);
        long count = LongStream.range(0, labels.numel()).parallel().filter(i -> ls.getLong(i) != value).count();
        Flat.of(out).set(0, count);
    }

    private static long[] checkedLabels(String op, Tensor labels, int ignoreIndex, long vocab) {
        Flat ls = Flat.of(labels);
        long[] label = new long[Math.toIntExact(labels.numel())];
        for (int i = 0; i < label.length; i++) {
            long y = ls.getLong(i);
            if (y != ignoreIndex && (y < 0 || y >= vocab)) {
                throw new ShapeException(op + ": label " + y + " at row " + i + " is outside [0, " + vocab
                        + ") and is not the ignore index " + ignoreIndex);
            }
            label[i] = y;
        }
        return label;
    }
}
