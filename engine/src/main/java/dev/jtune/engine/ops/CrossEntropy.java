package dev.jtune.engine.ops;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Node;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.CrossEntropyKernel;
import dev.jtune.engine.fused.SoftcapKernel;

/**
 * Cross-entropy averaged over the tokens whose label is not {@link #IGNORE_INDEX}, as HF computes a causal LM's
 * loss. The logits are never copied to fp32: the kernels stream each row once. {@link #linear} goes further and
 * never holds the logits of more than one chunk of tokens, recomputing them in backward one block (token chunk by
 * vocabulary slice) at a time: the [tokens x vocab] tensor that ran the seed's GPU out of memory never exists, and
 * neither does an fp32 [vocab x hidden] gradient of the weight.
 */
public final class CrossEntropy {
    /** Labels equal to this are not counted (HF's and torch's ignore_index). */
    public static final int IGNORE_INDEX = -100;

    private CrossEntropy() {
    }

    /** Mean loss of logits [..., V] against labels I32 [...]; a scalar F32 tensor (NaN when no label counts). */
    public static Tensor mean(Tensor logits, Tensor labels) {
        String op = "crossEntropy";
        Checks.floating(op, logits, "logits");
        Checks.dtype(op, labels, DType.I32, "labels");
        Checks.sameDevice(op, logits, labels);
        if (logits.rank() != labels.rank() + 1 || labels.numel() * logits.dim(-1) != logits.numel()) {
            throw new ShapeException(op + ": logits " + logits.shape() + " do not match labels " + labels.shape());
        }
        Tensor rows = Checks.rows(logits);
        Tensor flat = labels.contiguous().reshape(-1);
        long n = rows.dim(0);
        Tensor lse;
        Tensor count;
        Tensor loss;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            lse = Tensor.empty(Shape.of(n), Checks.statType(logits), logits.device());
            count = Tensor.empty(Shape.of(1), Checks.statType(logits), logits.device());
            Tensor perRow = Tensor.empty(Shape.of(n), Checks.statType(logits), logits.device());
            if (n > 0) {
                CrossEntropyKernel.on(logits).forward(rows, flat, IGNORE_INDEX, perRow, lse);
            }
            CrossEntropyKernel.on(logits).countNotEqual(flat, IGNORE_INDEX, count);
            loss = meanOf(perRow, count);
            perRow.close();
        }
        Node node = Autograd.attach(op, loss, g -> {
            Tensor gradRows = Tensor.empty(rows.shape(), logits.dtype(), logits.device());
            if (n > 0) {
                CrossEntropyKernel.on(logits).backward(rows, flat, lse, IGNORE_INDEX, scaleOf(g, count), gradRows);
            }
            return new Tensor[] {gradRows.reshape(logits.shape().toArray()), null};
        }, logits, labels);
        own(node, lse, count);
        return loss;
    }

    /**
     * The logits of one chunk, by default: 256 MiB, 512 tokens of Gemma 3's 262,144-entry vocabulary in bf16.
     * Measured on an H100 (Gemma 3 270M QLoRA, 8,192 tokens): 64 MiB chunks left the step's peak where it was (1.436 GiB)
     * and made the step 10 to 17 ms slower. Backward's blocks of logits (a token chunk by a vocabulary slice) are
     * about this size too.
     */
    static final long CHUNK_BYTES = 256L << 20;

    /**
     * The fp32 accumulator of one vocabulary slice of the weight's gradient, at most. When the weight needs a
     * gradient, backward finishes it one slice of the vocabulary at a time: one pass over the token chunks would sum
     * into an fp32 [V, H] (0.625 GiB for Gemma 3 270M's H 640, 1.125 GiB for 1B's 1,152, beside its bf16 cast), a
     * slice holds 64 MiB at most: 26,214 rows at H 640, 14,563 at H 1,152.
     */
    static final long SLICE_GRADIENT_BYTES = 64L << 20;

    /**
     * The narrowest default vocabulary slice (unless {@link #SLICE_GRADIENT_BYTES} allows fewer columns): at 8,192
     * tokens a block of 8,192 x 16,384 bf16 logits is {@link #CHUNK_BYTES}, and each of its three GEMMs (logits,
     * dh, dW) does 2 * 8,192 * 16,384 * H flops, large enough to keep an H100 busy. Narrower slices with longer
     * token chunks would only grow the [N, H] traffic of dh's accumulation.
     */
    static final long MIN_SLICE_COLUMNS = 16_384;

    /**
     * Mean loss of {@code hidden @ weight^T} against labels, a chunk of {@code chunkRows} tokens at a time:
     * hidden [N, H], weight [V, H] (e.g. the tied embedding), labels I32 [N]. Peak memory holds one chunk's
     * logits, in hidden's dtype; backward recomputes them (see {@link Blocks}). {@code chunkRows <= 0} picks chunks of
     * about {@link #CHUNK_BYTES}.
     */
    public static Tensor linear(Tensor hidden, Tensor weight, Tensor labels, int chunkRows) {
        return linear(hidden, weight, labels, chunkRows, 0);
    }

    /**
     * As {@link #linear(Tensor, Tensor, Tensor, int)}, but the summed loss is divided by {@code normalizer} instead
     * of this batch's own count when {@code normalizer > 0}: with gradient accumulation, the number of counted
     * tokens of the whole optimizer step, so that every token weighs the same whatever micro-batch it is in
     * (averaging per micro-batch would not: transformers#37197).
     */
    public static Tensor linear(Tensor hidden, Tensor weight, Tensor labels, int chunkRows, double normalizer) {
        return linear(hidden, weight, labels, chunkRows, normalizer, 0);
    }

    /** As above, with the logits capped at {@code softcap * tanh(logit / softcap)} first when {@code softcap > 0}. */
    public static Tensor linear(Tensor hidden, Tensor weight, Tensor labels, int chunkRows, double normalizer, double softcap) {
        return linear(hidden, weight, labels, chunkRows, 0, normalizer, softcap);
    }

    /**
     * As above, with backward's vocabulary slices {@code sliceColumns} wide ({@code <= 0}: {@link Blocks#choose}'s
     * default); {@code chunkRows} sets backward's token chunks too. For tests that need many blocks at small sizes.
     */
    static Tensor linear(Tensor hidden, Tensor weight, Tensor labels, int chunkRows, long sliceColumns, double normalizer,
                         double softcap) {
        String op = "linearCrossEntropy";
        Checks.floating(op, hidden, "hidden");
        Checks.rank(op, hidden, 2, "hidden [N, H]");
        Checks.rank(op, weight, 2, "weight [V, H]");
        Checks.sameDType(op, hidden, weight);
        Checks.dtype(op, labels, DType.I32, "labels");
        Checks.sameDevice(op, hidden, weight, labels);
        if (hidden.dim(1) != weight.dim(1) || labels.rank() != 1 || labels.dim(0) != hidden.dim(0)) {
            throw new ShapeException(op + ": hidden " + hidden.shape() + ", weight " + weight.shape() + " and labels "
                    + labels.shape() + " do not fit ([N, H], [V, H], [N])");
        }
        long n = hidden.dim(0);
        long vocab = weight.dim(0);
        long chunk = forwardRows(chunkRows, vocab, hidden.dtype());
        Tensor h = hidden.contiguous();
        Tensor w = weight.contiguous();
        Tensor lab = labels.contiguous();
        boolean inForward = gradientInForward(hidden, weight, softcap);
        Tensor lse;
        Tensor count;
        Tensor loss;
        Tensor dh = null; // with the gradient made in forward: dL/dhidden for the incoming gradient 1
        try (Autograd.GradMode off = Autograd.noGrad()) {
            lse = Tensor.empty(Shape.of(n), Checks.statType(h), h.device());
            count = countOf(h, lab, normalizer);
            Tensor unit = null; // the scale of an incoming gradient 1: 1 / count, as scaleOf makes it
            if (inForward) {
                unit = scaleOf(Tensor.full(Shape.scalar(), 1, count.dtype(), count.device()), count);
                dh = vocab == 0 ? Tensor.zeros(h.shape(), h.dtype(), h.device()) : Tensor.empty(h.shape(), h.dtype(), h.device());
            }
            Tensor perRow = Tensor.empty(Shape.of(n), Checks.statType(h), h.device());
            for (long r0 = 0; r0 < n; r0 += chunk) {
                long r1 = Math.min(n, r0 + chunk);
                try (Scope s = Scope.open("logits chunk")) {
                    Tensor logits = logits(h, w, r0, r1, softcap);
                    Tensor rowLabels = lab.slice(0, r0, r1);
                    if (inForward) { // the logits turned into their gradient in place, then this chunk's rows of dL/dhidden
                        CrossEntropyKernel.on(h).forwardWithGradient(logits, rowLabels, IGNORE_INDEX, unit, perRow.slice(0, r0, r1),
                                lse.slice(0, r0, r1), logits);
                        Backends.of(h).matmul(logits, false, w, false, dh.slice(0, r0, r1), false);
                    } else {
                        CrossEntropyKernel.on(h).forward(logits, rowLabels, IGNORE_INDEX, perRow.slice(0, r0, r1), lse.slice(0, r0, r1));
                    }
                }
            }
            loss = meanOf(perRow, count);
            perRow.close();
            if (inForward) {
                unit.close();
                lse.close();
            }
        }
        if (inForward) {
            Tensor made = dh;
            Node node = Autograd.attach(op, loss, g -> new Tensor[] {Ops.mul(made, g.cast(made.dtype())), null, null}, hidden, weight, labels);
            own(node, dh, count);
            return loss;
        }
        Blocks blocks = Blocks.choose(n, vocab, hidden.dim(1), hidden.dtype(), weight.requiresGrad(), chunkRows, sliceColumns);
        Node node = Autograd.attach(op, loss, g -> {
            Tensor[] grads = backward(h, w, lab, lse, scaleOf(g, count), softcap, blocks, hidden.requiresGrad(), weight.requiresGrad());
            return new Tensor[] {grads[0], grads[1], null};
        }, hidden, weight, labels);
        own(node, lse, count);
        return loss;
    }

    /** The switch of {@link #gradientInForward}, read at each call so a test or benchmark can compare both ways. */
    static final String GRADIENT_IN_FORWARD = "jtune.crossEntropyGradientInForward";

    /**
     * Whether forward also computes hidden's gradient (as Liger's fused linear cross-entropy does): when it will be
     * wanted (recording, hidden requires grad) and the weight's will not (LoRA, QLoRA: the tied embedding is frozen),
     * without a cap. Each chunk's logits turn into their gradient in place right after their loss, and one product
     * adds the chunk's rows of dL/dhidden; backward only scales the result by the incoming gradient: the logits are
     * never recomputed (one of the head's three [N, H] x [H, V] products, and one pass of the cross-entropy kernel over
     * [N, V], fewer). With an incoming gradient of 1 every value equals the recomputing backward's: the same logits,
     * the same scale, the same products. The cost: dL/dhidden [N, H] held from forward to backward. On unless
     * {@code -Djtune.crossEntropyGradientInForward=false}.
     */
    static boolean gradientInForward(Tensor hidden, Tensor weight, double softcap) {
        return Autograd.isEnabled() && hidden.requiresGrad() && !weight.requiresGrad() && softcap <= 0
                && !"false".equals(System.getProperty(GRADIENT_IN_FORWARD));
    }

    /** Forward's chunk of tokens: {@code chunkRows}, or about {@link #CHUNK_BYTES} of logits (at least 16 rows). */
    private static long forwardRows(int chunkRows, long vocab, DType dtype) {
        return chunkRows > 0 ? chunkRows : Math.max(16, CHUNK_BYTES / Math.max(1, vocab * dtype.bytesFor(1)));
    }

    /**
     * How backward tiles the [N, V] logits: chunks of {@code rows} tokens within slices of {@code columns} vocabulary
     * entries (the last chunk and slice may be shorter). One slice is the whole vocabulary: a single pass over the
     * token chunks, as forward goes.
     */
    record Blocks(long rows, long columns) {
        Blocks {
            if (rows < 1 || columns < 1) {
                throw new IllegalArgumentException("blocks of " + rows + " x " + columns);
            }
        }

        /**
         * Without the weight's gradient (LoRA, QLoRA) there is nothing to slice for: one slice, forward's chunks.
         * With it, slices of {@link #MIN_SLICE_COLUMNS} or of as many columns as hold all N tokens in
         * {@link #CHUNK_BYTES} (at small N), but no more than {@link #SLICE_GRADIENT_BYTES} of fp32 gradient, then
         * token chunks of about {@link #CHUNK_BYTES} within a slice. Gemma 3 at 8,192 tokens: 270M 16 slices of
         * 16,384 (40 MiB accumulator) by one chunk of 8,192; 1B 19 slices of 13,824 (61 MiB) by one chunk.
         * Slices and chunks are balanced (equal but for the last), slices in multiples of 256 columns so that each
         * block's rows stay aligned for the vector loads; at small N or V there is one block. The flops are those of
         * one pass (every logit is recomputed once) and 270M at 8K makes as many GEMM calls (16 blocks, not 16 chunks);
         * dW's GEMM no longer reads and writes a 0.625 GiB fp32 sum per 512-token chunk (20 GB a micro-batch), only a
         * 40 MiB slice, so backward should be no slower. {@code chunkRows > 0} and {@code sliceColumns > 0} override
         * the choice.
         */
        static Blocks choose(long n, long vocab, long hidden, DType dtype, boolean weightGradient, int chunkRows,
                             long sliceColumns) {
            long element = dtype.bytesFor(1);
            long columns;
            if (sliceColumns > 0) {
                columns = Math.min(sliceColumns, vocab);
            } else if (weightGradient) {
                long accumulator = Math.max(256, SLICE_GRADIENT_BYTES / Math.max(1, hidden * Checks.statType(dtype).bytesFor(1)));
                long wanted = Math.max(MIN_SLICE_COLUMNS, CHUNK_BYTES / Math.max(1, n * element));
                columns = balanced(vocab, Math.min(accumulator, wanted), 256);
            } else {
                columns = vocab;
            }
            columns = Math.max(1, columns);
            long rows;
            if (chunkRows > 0) {
                rows = chunkRows;
            } else if (columns >= vocab) {
                rows = forwardRows(0, vocab, dtype);
            } else {
                rows = balanced(n, Math.max(16, CHUNK_BYTES / (columns * element)), 16);
            }
            return new Blocks(Math.max(1, rows), columns);
        }

        /** Pieces of at most about {@code max} covering {@code total}, equal but for the last, in multiples of {@code align}. */
        private static long balanced(long total, long max, long align) {
            if (total <= max) {
                return total;
            }
            long pieces = Math.ceilDiv(total, max);
            long size = Math.ceilDiv(Math.ceilDiv(total, pieces), align) * align;
            return Math.min(total, size);
        }

        /** How many slices cover {@code vocab}. */
        long slices(long vocab) {
            return Math.ceilDiv(vocab, columns);
        }
    }

    /**
     * dL/dhidden and dL/dweight (null where not wanted). The gradient of a block of logits (token rows [r0, r1),
     * vocabulary columns [v0, v1)) depends only on that block, lse, the labels and the scale, so backward loops over
     * vocabulary slices outside and token chunks inside: each slice's rows of the weight's gradient are finished, in an
     * fp32 accumulator of one slice, before the next slice starts, and no fp32 [V, H] ever exists. hidden's gradient
     * sums every slice's product, in fp32 [N, H] (the result itself when hidden is fp32 or wider, or when there is one
     * slice: then each row is written once, as one pass over the chunks always did).
     */
    private static Tensor[] backward(Tensor h, Tensor w, Tensor lab, Tensor lse, Tensor scale, double softcap, Blocks blocks,
                                     boolean wantHidden, boolean wantWeight) {
        long n = h.dim(0);
        long vocab = w.dim(0);
        DType acc = Checks.statType(h);
        boolean oneSlice = blocks.slices(vocab) <= 1;
        Tensor ghAcc = null;
        if (wantHidden) {
            DType ghType = oneSlice ? h.dtype() : acc;
            ghAcc = vocab == 0 ? Tensor.zeros(h.shape(), ghType, h.device()) : Tensor.empty(h.shape(), ghType, h.device());
        }
        Tensor gw = null;
        Tensor gwAcc = null;
        if (wantWeight) {
            if (acc == w.dtype()) {
                gw = Tensor.zeros(w.shape(), acc, w.device()); // accumulated in place, slice by slice
            } else {
                gw = Tensor.empty(w.shape(), w.dtype(), w.device());
                gwAcc = Tensor.empty(Shape.of(Math.min(blocks.columns(), vocab), w.dim(1)), acc, w.device());
            }
        }
        for (long v0 = 0; v0 < vocab; v0 += blocks.columns()) {
            long v1 = Math.min(vocab, v0 + blocks.columns());
            Tensor slice = w.slice(0, v0, v1);
            Tensor gwSlice = gw == null ? null : gwAcc == null ? gw.slice(0, v0, v1) : gwAcc.slice(0, 0, v1 - v0);
            if (gwAcc != null) {
                Backends.of(w).fill(gwSlice, 0);
            }
            for (long r0 = 0; r0 < n; r0 += blocks.rows()) {
                long r1 = Math.min(n, r0 + blocks.rows());
                try (Scope s = Scope.open("logits block")) {
                    Tensor dlogits = blockGradient(h, slice, v0, r0, r1, lab, lse, scale, softcap);
                    if (ghAcc != null) {
                        Backends.of(h).matmul(dlogits, false, slice, false, ghAcc.slice(0, r0, r1), v0 > 0);
                    }
                    if (gwSlice != null) {
                        Backends.of(h).matmul(dlogits, true, h.slice(0, r0, r1), false, gwSlice, true);
                    }
                }
            }
            if (gwAcc != null) {
                Backends.of(w).copy(gwSlice, gw.slice(0, v0, v1));
            }
        }
        if (gwAcc != null) {
            gwAcc.close();
        }
        Tensor gh = ghAcc;
        if (ghAcc != null && ghAcc.dtype() != h.dtype()) {
            gh = ghAcc.cast(h.dtype());
            ghAcc.close();
        }
        return new Tensor[] {gh, gw};
    }

    /**
     * dL/dlogits of token rows [r0, r1) against {@code slice}, the weight's rows from {@code firstColumn} on: the
     * recomputed logits turned into their gradient in place (a second block when capped: the cap's backward reads
     * the capped logits).
     */
    private static Tensor blockGradient(Tensor h, Tensor slice, long firstColumn, long r0, long r1, Tensor lab, Tensor lse,
                                        Tensor scale, double softcap) {
        Tensor logits = logits(h, slice, r0, r1, softcap);
        Tensor grad = softcap > 0 ? Tensor.empty(logits.shape(), logits.dtype(), logits.device()) : logits;
        CrossEntropyKernel.on(h).backward(logits, firstColumn, lab.slice(0, r0, r1), lse.slice(0, r0, r1), IGNORE_INDEX, scale, grad);
        if (softcap > 0) {
            SoftcapKernel.on(h).backward(logits, grad, softcap, grad);
        }
        return grad;
    }

    /**
     * Logits of rows [r0, r1) against every row of {@code w} (all the vocabulary, or a slice of it): hidden rows @
     * w^T, in hidden's dtype, capped when {@code softcap > 0}.
     */
    private static Tensor logits(Tensor h, Tensor w, long r0, long r1, double softcap) {
        Tensor logits = Tensor.empty(Shape.of(r1 - r0, w.dim(0)), h.dtype(), h.device());
        Backends.of(h).matmul(h.slice(0, r0, r1), false, w, true, logits, false);
        if (softcap > 0) {
            SoftcapKernel.on(h).forward(logits, softcap, logits);
        }
        return logits;
    }

    /** The loss's denominator [1]: {@code normalizer} when positive, else the labels not {@link #IGNORE_INDEX}. */
    private static Tensor countOf(Tensor h, Tensor lab, double normalizer) {
        Tensor count = Tensor.empty(Shape.of(1), Checks.statType(h), h.device());
        if (normalizer > 0) {
            Backends.of(h).fill(count, normalizer);
        } else {
            CrossEntropyKernel.on(h).countNotEqual(lab, IGNORE_INDEX, count);
        }
        return count;
    }

    /** sum(perRow) / count, a scalar. */
    private static Tensor meanOf(Tensor perRow, Tensor count) {
        Tensor total = perRow.numel() == 0 ? Tensor.zeros(Shape.scalar(), perRow.dtype(), perRow.device()) : perRow.sum(0);
        return Ops.div(total, count.reshape());
    }

    /** d(loss)/d(row loss) = gradOut / count, kept on the device. */
    private static Tensor scaleOf(Tensor gradOut, Tensor count) {
        return Ops.div(gradOut.cast(count.dtype()).reshape(1), count);
    }

    private static void own(Node node, Tensor... saved) {
        if (node != null) {
            node.own(saved);
        } else {
            for (Tensor t : saved) {
                t.close();
            }
        }
    }
}
