package dev.jtune.engine.fused;

import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.LossKernels;

import java.util.stream.LongStream;

/**
 * Cross-entropy's kernels ({@code ops.CrossEntropy} is the op), the count of counted labels included: cpu reference,
 * cuda launcher (kernels/loss.cu through {@link LossKernels}) and meta rule (no workspace), registered once as
 * {@link #OP}. logits [N, V] (any float dtype) are never copied to fp32; labels I32 [N]; loss, lse, scale and counts
 * are F32 (F64 next to F64 logits); all contiguous.
 */
public interface CrossEntropyKernel {

    /**
     * {@code lse[i] = log sum_v exp(logits[i, v])} and {@code loss[i] = lse[i] - logits[i, labels[i]]}, both [N]; a row
     * whose label is {@code ignoreIndex} gets loss 0 (its lse is still written).
     */
    void forward(Tensor logits, Tensor labels, int ignoreIndex, Tensor loss, Tensor lse);

    /**
     * {@code gradLogits[i, v] = scale[0] * (exp(logits[i, v] - lse[i]) - (v == labels[i]))}, and 0 on ignored rows.
     * scale is a [1] tensor on the device (so the loss normalisation needs no host sync); gradLogits [N, V] in logits'
     * dtype, may be logits.
     */
    default void backward(Tensor logits, Tensor labels, Tensor lse, int ignoreIndex, Tensor scale, Tensor gradLogits) {
        backward(logits, 0, labels, lse, ignoreIndex, scale, gradLogits);
    }

    /**
     * The same over a block of the vocabulary: logits [N, v] are the columns [firstColumn, firstColumn + v) of the
     * [N, V] logits whose lse the forward saved, and
     * {@code gradLogits[i, c] = scale[0] * (exp(logits[i, c] - lse[i]) - (firstColumn + c == labels[i]))}, 0 on ignored
     * rows. A label outside the block gives its row no one-hot term here (it has one in its own block). This lets
     * a backward go one vocabulary slice at a time; firstColumn 0 and v = V is the whole row.
     */
    void backward(Tensor logits, long firstColumn, Tensor labels, Tensor lse, int ignoreIndex, Tensor scale, Tensor gradLogits);

    /**
     * {@link #forward} then {@link #backward} over whole rows, in one call: loss, lse and gradLogits (which may be
     * logits: the gradient replaces them). The cuda launcher may read the logits once for all three (its one-pass
     * kernel); the values are the pair's, up to the order of the row's sums.
     */
    default void forwardWithGradient(Tensor logits, Tensor labels, int ignoreIndex, Tensor scale, Tensor loss, Tensor lse,
                                     Tensor gradLogits) {
        forward(logits, labels, ignoreIndex, loss, lse);
        backward(logits, 0, labels, lse, ignoreIndex, scale, gradLogits);
    }

    /** {@code out[0] = number of i with labels[i] != value}, as a [1] statistic: the loss's token count. */
    void countNotEqual(Tensor labels, int value, Tensor out);

    FusedOp<CrossEntropyKernel> OP = FusedOp.of("crossEntropy", new Cpu(), Cuda::new, new Meta());

    static CrossEntropyKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The reference: rows in parallel, read straight from the logits' dtype, in double. */
    final class Cpu implements CrossEntropyKernel {
        private Cpu() {
        }

        /**
         * {@code lse[i] = m + log sum_v exp(logits[i, v] - m)} with m the row's max (an infinite max is the lse itself,
         * as torch.logsumexp). A label that is neither ignoreIndex nor in [0, V) is an error, raised before anything is
         * written.
         */
        @Override
        public void forward(Tensor logits, Tensor labels, int ignoreIndex, Tensor loss, Tensor lse) {
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
         * Each element is read before it is written, so gradLogits may be logits. A block does not know the
         * vocabulary's size, so only a negative label that is not ignoreIndex is an error here (the forward, over
         * whole rows, checks the upper bound).
         */
        @Override
        public void backward(Tensor logits, long firstColumn, Tensor labels, Tensor lse, int ignoreIndex, Tensor scale,
                             Tensor gradLogits) {
            if (firstColumn < 0) {
                throw new ShapeException("crossEntropyBackward: first column " + firstColumn + " is negative");
            }
            long vocab = logits.dim(-1);
            long[] label = checkedLabels("crossEntropyBackward", labels, ignoreIndex, Long.MAX_VALUE);
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
                long hot = y - firstColumn; // the label's column in this block, outside [0, vocab) for another block's
                for (long v = 0; v < vocab; v++) {
                    double p = Math.exp(xs.get(first + v) - l);
                    gs.set(first + v, factor * (v == hot ? p - 1 : p));
                }
            });
        }

        /** Exact as an integer, then stored (F32 holds it exactly up to 2^24). */
        @Override
        public void countNotEqual(Tensor labels, int value, Tensor out) {
            Flat ls = Flat.of(labels);
            long count = LongStream.range(0, labels.numel()).parallel().filter(i -> ls.getLong(i) != value).count();
            Flat.of(out).set(0, count);
        }

        /** The labels, each ignoreIndex or in [0, vocab) (Long.MAX_VALUE: no upper bound known). */
        private static long[] checkedLabels(String op, Tensor labels, int ignoreIndex, long vocab) {
            Flat ls = Flat.of(labels);
            long[] label = new long[Math.toIntExact(labels.numel())];
            for (int i = 0; i < label.length; i++) {
                long y = ls.getLong(i);
                if (y != ignoreIndex && (y < 0 || y >= vocab)) {
                    throw new ShapeException(op + ": label " + y + " at row " + i + " is outside [0, "
                            + (vocab == Long.MAX_VALUE ? "V" : vocab) + ") and is not the ignore index " + ignoreIndex);
                }
                label[i] = y;
            }
            return label;
        }
    }

    /** kernels/loss.cu: one warp or block per row, each row of logits streamed once. */
    final class Cuda implements CrossEntropyKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        private LossKernels kernels() {
            return gpu.family(LossKernels.class, b -> new LossKernels(b.compiler(), b.stream(), b.context()));
        }

        @Override
        public void forward(Tensor logits, Tensor labels, int ignoreIndex, Tensor loss, Tensor lse) {
            kernels().crossEntropy(logits, labels, ignoreIndex, loss, lse);
        }

        @Override
        public void backward(Tensor logits, long firstColumn, Tensor labels, Tensor lse, int ignoreIndex, Tensor scale,
                             Tensor gradLogits) {
            kernels().crossEntropyBackward(logits, firstColumn, labels, lse, ignoreIndex, scale, gradLogits);
        }

        @Override
        public void forwardWithGradient(Tensor logits, Tensor labels, int ignoreIndex, Tensor scale, Tensor loss, Tensor lse,
                                        Tensor gradLogits) {
            kernels().crossEntropyWithGradient(logits, labels, ignoreIndex, scale, loss, lse, gradLogits);
        }

        @Override
        public void countNotEqual(Tensor labels, int value, Tensor out) {
            kernels().countNotEqual(labels, value, out);
        }
    }

    /** No workspace: the op allocates every output. */
    final class Meta implements CrossEntropyKernel {
        private Meta() {
        }

        @Override
        public void forward(Tensor logits, Tensor labels, int ignoreIndex, Tensor loss, Tensor lse) {
        }

        @Override
        public void backward(Tensor logits, long firstColumn, Tensor labels, Tensor lse, int ignoreIndex, Tensor scale,
                             Tensor gradLogits) {
        }

        @Override
        public void countNotEqual(Tensor labels, int value, Tensor out) {
        }
    }
}
