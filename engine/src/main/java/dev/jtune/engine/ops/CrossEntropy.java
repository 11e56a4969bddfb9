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
 * never holds the logits of more than one chunk of tokens, recomputing them in backward: the [tokens x vocab]
 * tensor that ran the seed's GPU out of memory never exists.
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
     * Mean loss of {@code hidden @ weight^T} against labels, a chunk of {@code chunkRows} tokens at a time:
     * hidden [N, H], weight [V, H] (e.g. the tied embedding), labels I32 [N]. Peak memory holds one chunk's
     * logits, in hidden's dtype; backward recomputes them. {@code chunkRows <= 0} picks chunks of about {@link #CHUNK_BYTES}.
     */
    /**
     * The logits of one chunk, by default: 256 MiB, 512 tokens of Gemma 3's 262,144-entry vocabulary in bf16.
     * Measured on an H100 (Gemma 3 270M QLoRA, 8,192 tokens): 64 MiB chunks left the step's peak where it was (1.436 GiB)
     * and made the step 10 to 17 ms slower.
     */
    static final long CHUNK_BYTES = 256L << 20;

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
        long chunk = chunkRows > 0 ? chunkRows : Math.max(16, CHUNK_BYTES / Math.max(1, vocab * hidden.dtype().bytesFor(1)));
        Tensor h = hidden.contiguous();
        Tensor w = weight.contiguous();
        Tensor lab = labels.contiguous();
        Tensor lse;
        Tensor count;
        Tensor loss;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            lse = Tensor.empty(Shape.of(n), Checks.statType(h), h.device());
            count = Tensor.empty(Shape.of(1), Checks.statType(h), h.device());
            Tensor perRow = Tensor.empty(Shape.of(n), Checks.statType(h), h.device());
            for (long r0 = 0; r0 < n; r0 += chunk) {
                long r1 = Math.min(n, r0 + chunk);
                try (Scope s = Scope.open("logits chunk")) {
                    Tensor logits = chunkLogits(h, w, r0, r1, softcap);
                    CrossEntropyKernel.on(h).forward(logits, lab.slice(0, r0, r1), IGNORE_INDEX, perRow.slice(0, r0, r1), lse.slice(0, r0, r1));
                }
            }
            if (normalizer > 0) {
                Backends.of(h).fill(count, normalizer);
            } else {
                CrossEntropyKernel.on(h).countNotEqual(lab, IGNORE_INDEX, count);
            }
            loss = meanOf(perRow, count);
            perRow.close();
        }
        Node node = Autograd.attach(op, loss, g -> {
            Tensor scale = scaleOf(g, count);
            Tensor gh = hidden.requiresGrad() ? Tensor.empty(h.shape(), h.dtype(), h.device()) : null;
            Tensor gw = weight.requiresGrad() ? Tensor.zeros(w.shape(), Checks.statType(w), w.device()) : null;
            for (long r0 = 0; r0 < n; r0 += chunk) {
                long r1 = Math.min(n, r0 + chunk);
                try (Scope s = Scope.open("logits chunk")) {
                    Tensor logits = chunkLogits(h, w, r0, r1, softcap);
                    Tensor grad = softcap > 0 ? Tensor.empty(logits.shape(), logits.dtype(), logits.device()) : logits;
                    CrossEntropyKernel.on(h).backward(logits, lab.slice(0, r0, r1), lse.slice(0, r0, r1), IGNORE_INDEX, scale, grad);
                    if (softcap > 0) {
                        SoftcapKernel.on(h).backward(logits, grad, softcap, grad);
                    }
                    logits = grad;
                    if (gh != null) {
                        Backends.of(h).matmul(logits, false, w, false, gh.slice(0, r0, r1), false);
                    }
                    if (gw != null) {
                        Backends.of(h).matmul(logits, true, h.slice(0, r0, r1), false, gw, true);
                    }
                }
            }
            return new Tensor[] {gh, gw == null ? null : gw.cast(weight.dtype()), null};
        }, hidden, weight, labels);
        own(node, lse, count);
        return loss;
    }

    /** Logits of rows [r0, r1): hidden rows @ weight^T, in hidden's dtype, capped when {@code softcap > 0}. */
    private static Tensor chunkLogits(Tensor h, Tensor w, long r0, long r1, double softcap) {
        Tensor logits = Tensor.empty(Shape.of(r1 - r0, w.dim(0)), h.dtype(), h.device());
        Backends.of(h).matmul(h.slice(0, r0, r1), false, w, true, logits, false);
        if (softcap > 0) {
            SoftcapKernel.on(h).forward(logits, softcap, logits);
        }
        return logits;
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
