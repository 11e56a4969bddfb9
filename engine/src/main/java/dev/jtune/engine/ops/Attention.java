package dev.jtune.engine.ops;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.Node;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.fused.AttentionKernel;
import dev.jtune.engine.fused.SoftcapKernel;

import java.util.function.BiConsumer;
import java.util.function.Supplier;

/**
 * Causal attention with an optional sliding window and grouped-query heads; no [T x T] score matrix ever exists and
 * only the per-row log-sum-exp is saved. Two implementations of one function: where the backend has fused kernels
 * for the dtype and head size ({@link AttentionKernel#hasFused}: the GPU in bf16/f16), one kernel forward and two
 * backward (FlashAttention-2's algorithm); elsewhere, and with a logit cap, the blocked path: per (batch, head,
 * query block) the scores against the visible keys only are computed in fp32 by the backend's matmul, soft-maxed
 * with the mask, and multiplied by the values; backward recomputes each block's probabilities from the lse and
 * accumulates dK, dV in fp32. Query head h uses key/value head {@code h / (Hq / Hkv)}.
 */
public final class Attention {
    private Attention() {
    }

    /**
     * q [B, Hq, T, D], k and v [B, Hkv, T, D]; returns [B, Hq, T, D] in q's dtype. Where the fused kernels take it
     * ({@link AttentionKernel#takesTokensMajor}), operands that are [B, T, H, D] tensors viewed as [B, H, T, D] (as the
     * projections make them) are read as they lie, and the output is such a view too (o_proj reads it without a
     * copy); other layouts are copied first.
     */
    public static Tensor causal(Tensor q, Tensor k, Tensor v, AttentionSpec spec) {
        return causal(q, k, v, spec, null);
    }

    /**
     * Over packed rows: {@code mask} (null: none, as above) says which sample and bidirectional group each token is
     * in ({@link AttentionMask}), so no query sees a key of another sample. The fused and blocked paths both take it;
     * the unmasked path is unchanged.
     */
    public static Tensor causal(Tensor q, Tensor k, Tensor v, AttentionSpec spec, AttentionMask mask) {
        String op = "attention";
        Checks.floating(op, q, "q");
        Checks.rank(op, q, 4, "q [B, Hq, T, D]");
        Checks.rank(op, k, 4, "k [B, Hkv, T, D]");
        Checks.sameShape(op, k, v);
        Checks.sameDType(op, q, k);
        Checks.sameDType(op, q, v);
        Checks.sameDevice(op, q, k, v);
        if (q.dim(0) != k.dim(0) || q.dim(2) != k.dim(2) || q.dim(3) != k.dim(3) || k.dim(1) == 0 || q.dim(1) % k.dim(1) != 0) {
            throw new ShapeException(op + ": q " + q.shape() + " and k/v " + k.shape()
                    + " must share batch, length and head size, with query heads a multiple of key/value heads");
        }
        AttentionMask m = mask == null ? null : mask.checked(op, q);
        AttentionKernel kernel = AttentionKernel.on(q);
        if (spec.softcap() <= 0 && kernel.hasFused(q.dtype(), q.dim(3))) {
            boolean tokens = kernel.takesTokensMajor();
            return fused(readable(q, tokens), readable(k, tokens), readable(v, tokens), spec, m, tokens);
        }
        Blocks blocks = new Blocks(q.contiguous(), k.contiguous(), v.contiguous(), spec, m);
        Tensor[] made = forward(q, k, spec, m, false, blocks::forward);
        Tensor out = made[0];
        Tensor lse = made[1];
        Node node = Autograd.attach(op, out, g -> blocks.backward(g.contiguous(), out, lse), q, k, v);
        if (node != null) {
            node.own(lse);
        } else {
            lse.close();
        }
        return out;
    }

    /**
     * One kernel forward and two backward where the device has them ({@link AttentionKernel#hasFused}): the same
     * function as the blocked path, with the scores never leaving the chip.
     */
    private static Tensor fused(Tensor q, Tensor k, Tensor v, AttentionSpec spec, AttentionMask mask, boolean tokens) {
        Tensor segments = mask == null ? null : mask.segments();
        Tensor groups = mask == null ? null : mask.groups();
        Tensor[] made = forward(q, k, spec, mask, tokens, (out, lse) -> {
            if (out.numel() > 0) {
                AttentionKernel.on(q).fusedForward(q, k, v, segments, groups, spec.window(), spec.scale(), out, lse);
            }
        });
        Tensor out = made[0];
        Tensor lse = made[1];
        Node node = Autograd.attach("attention", out, g -> {
            Tensor gOut = inLayoutOf(out, g);
            Tensor gq = Rope.emptyLaidOutAs(q);
            Tensor gk = Rope.emptyLaidOutAs(k);
            Tensor gv = Rope.emptyLaidOutAs(v);
            if (out.numel() > 0) {
                Tensor delta = delta(gOut, out, lse);
                AttentionKernel.on(q).fusedBackward(q, k, v, segments, groups, gOut, lse, delta, spec.window(), spec.scale(), gq, gk, gv);
                delta.close();
            }
            return new Tensor[] {gq, gk, gv};
        }, q, k, v);
        if (node != null) {
            node.own(lse);
        } else {
            lse.close();
        }
        return out;
    }

    /**
     * The output [B, Hq, T, D] and per-row log-sum-exp [B, Hq, T] that {@code kernel} fills, made without recording; in
     * a checkpoint, kept for its recomputation where the spec's {@link KeptAttention} says so (the recomputation then
     * skips the forward and gets the first run's tensors back).
     */
    private static Tensor[] forward(Tensor q, Tensor k, AttentionSpec spec, AttentionMask mask, boolean tokens,
                                    BiConsumer<Tensor, Tensor> kernel) {
        Supplier<Tensor[]> run = () -> {
            try (Autograd.GradMode off = Autograd.noGrad()) {
                Tensor out = tokens ? tokensMajor(q.shape(), q) : Tensor.empty(q.shape(), q.dtype(), q.device());
                Tensor lse = Tensor.empty(Shape.of(q.dim(0), q.dim(1), q.dim(2)), Checks.statType(q), q.device());
                kernel.accept(out, lse);
                return new Tensor[] {out, lse};
            }
        };
        if (!spec.kept(q.dim(2))) {
            return run.get();
        }
        String call = "attention q " + q.shape() + " kv " + k.shape() + " " + q.dtype() + " " + spec + (mask == null ? "" : " masked");
        return Autograd.keptResults(call, run);
    }

    /**
     * delta [B, H, T] = the row dot product of the output's gradient and the output (both in one layout), in lse's
     * (statistics) dtype. Tokens-major, the rows come in [B, T, H] order, which one small copy puts in [B, H, T].
     */
    private static Tensor delta(Tensor gOut, Tensor out, Tensor lse) {
        boolean tokens = !out.isContiguous();
        Tensor rowsOut = tokens ? out.transpose(1, 2) : out;
        Tensor rowsGrad = tokens ? gOut.transpose(1, 2) : gOut;
        Tensor dots = Tensor.empty(Shape.of(rowsOut.dim(0), rowsOut.dim(1), rowsOut.dim(2)), lse.dtype(), lse.device());
        AttentionKernel.on(out).rowDot(rowsGrad.reshape(-1, out.dim(3)), rowsOut.reshape(-1, out.dim(3)), dots.reshape(-1));
        if (!tokens) {
            return dots;
        }
        Tensor delta = dots.transpose(1, 2).contiguous();
        dots.close();
        return delta;
    }

    /**
     * Contiguous and 16-byte aligned, as the fused kernels read rows with 16-byte copies: a contiguous view whose
     * offset is not (a reshaped slice of a flat buffer, say) is copied.
     */
    private static Tensor aligned(Tensor t) {
        Tensor c = t.contiguous();
        return c.address() % 16 == 0 ? c : c.copy();
    }

    /** An operand as the fused kernels read it: tokens-major as it lies where they take that, else {@link #aligned}. */
    private static Tensor readable(Tensor t, boolean tokens) {
        return tokens && tokensMajorAligned(t) ? t : aligned(t);
    }

    /** The output gradient in the output's layout (the kernels and delta read both alike). */
    private static Tensor inLayoutOf(Tensor out, Tensor g) {
        if (out.isContiguous()) {
            return aligned(g);
        }
        if (tokensMajorAligned(g)) {
            return g;
        }
        Tensor copy = tokensMajor(g.shape(), g);
        Ops.copyInto(g, copy);
        return copy;
    }

    /** Tokens-major and 16-byte aligned: what the fused kernels read as it lies. */
    private static boolean tokensMajorAligned(Tensor t) {
        return AttentionKernel.tokensMajor(t) && t.address() % 16 == 0;
    }

    /**
     * A new [B, H, T, D] tensor of like's dtype and device, tokens-major, owning its storage (freed when the op's output
     * or a gradient is closed, not when the scope is).
     */
    private static Tensor tokensMajor(Shape bhtd, Tensor like) {
        return Tensor.emptyTransposed(bhtd, 1, 2, like.dtype(), like.device());
    }

    /**
     * The loop over (batch, query head, query block) shared by forward and backward. A block's keys run from the first
     * the window lets its first query see to its last query; with bidirectional groups, over the whole row (a group
     * reaches past the query), the mask deciding.
     */
    private record Blocks(Tensor q, Tensor k, Tensor v, AttentionSpec spec, AttentionMask mask) {

        long group() {
            return q.dim(1) / k.dim(1);
        }

        /** Rows [from, to) of head h of batch b of a [B, H, T, D] tensor, as a contiguous [to - from, D] view. */
        static Tensor rows(Tensor t, long b, long h, long from, long to) {
            return t.slice(0, b, b + 1).slice(1, h, h + 1).slice(2, from, to).reshape(to - from, t.dim(3));
        }

        /** Same for [B, H, T] per-row statistics. */
        static Tensor stats(Tensor t, long b, long h, long from, long to) {
            return t.slice(0, b, b + 1).slice(1, h, h + 1).slice(2, from, to).reshape(to - from);
        }

        /**
         * Applies the attention logit cap to raw scores in place ({@code cap tanh(scale s / cap)}) and returns the
         * scale the softmax must still apply: 1 when capped (the scale went into the cap), else the spec's.
         */
        double capScores(Backend be, Tensor scores) {
            if (spec.softcap() <= 0) {
                return spec.scale();
            }
            be.scale(scores, spec.scale() / spec.softcap(), scores);
            SoftcapKernel.on(scores).forward(scores, 1.0, scores);
            be.scale(scores, spec.softcap(), scores);
            return 1.0;
        }

        /** First key visible to any query of [t0, ...). */
        long firstKey(long t0) {
            return spec.window() > 0 && !grouped() ? Math.max(0, t0 - spec.window() + 1) : 0;
        }

        /** One past the last key visible to any query of [..., t1). */
        long endKey(long t1) {
            return grouped() ? q.dim(2) : t1;
        }

        boolean grouped() {
            return mask != null && mask.groups() != null;
        }

        void softmax(AttentionKernel kernel, Tensor scores, long t0, long t1, long k0, double scale, Tensor probs, Tensor lse,
                     long b, boolean lseIn) {
            if (mask == null) {
                kernel.maskedSoftmax(scores, t0, t1 - t0, k0, spec.window(), scale, probs, lse, lseIn);
            } else {
                kernel.maskedSoftmax(scores, t0, t1 - t0, k0, spec.window(), mask.segmentsOf(b), mask.groupsOf(b), scale, probs,
                        lse, lseIn);
            }
        }

        void forward(Tensor out, Tensor lse) {
            Backend be = Backends.of(q);
            AttentionKernel kernel = AttentionKernel.on(q);
            long t = q.dim(2);
            for (long b = 0; b < q.dim(0); b++) {
                for (long h = 0; h < q.dim(1); h++) {
                    long hk = h / group();
                    for (long t0 = 0; t0 < t; t0 += spec.queryBlock()) {
                        long t1 = Math.min(t, t0 + spec.queryBlock());
                        long k0 = firstKey(t0);
                        long k1 = endKey(t1);
                        try (Scope s = Scope.open("attention block")) {
                            Tensor kb = rows(k, b, hk, k0, k1);
                            Tensor scores = Tensor.empty(Shape.of(t1 - t0, k1 - k0), Checks.statType(q), q.device());
                            be.matmul(rows(q, b, h, t0, t1), false, kb, true, scores, false);
                            double scale = capScores(be, scores);
                            Tensor probs = Tensor.empty(scores.shape(), q.dtype(), q.device());
                            softmax(kernel, scores, t0, t1, k0, scale, probs, stats(lse, b, h, t0, t1), b, false);
                            be.matmul(probs, false, rows(v, b, hk, k0, k1), false, rows(out, b, h, t0, t1), false);
                        }
                    }
                }
            }
        }

        Tensor[] backward(Tensor gOut, Tensor out, Tensor lse) {
            Backend be = Backends.of(q);
            AttentionKernel kernel = AttentionKernel.on(q);
            long t = q.dim(2);
            Tensor delta = delta(gOut, out, lse);
            Tensor gq = Tensor.empty(q.shape(), q.dtype(), q.device());
            Tensor gk = Tensor.zeros(k.shape(), Checks.statType(q), q.device());
            Tensor gv = Tensor.zeros(v.shape(), Checks.statType(q), q.device());
            for (long b = 0; b < q.dim(0); b++) {
                for (long h = 0; h < q.dim(1); h++) {
                    long hk = h / group();
                    for (long t0 = 0; t0 < t; t0 += spec.queryBlock()) {
                        long t1 = Math.min(t, t0 + spec.queryBlock());
                        long k0 = firstKey(t0);
                        long k1 = endKey(t1);
                        try (Scope s = Scope.open("attention block backward")) {
                            Tensor qb = rows(q, b, h, t0, t1);
                            Tensor kb = rows(k, b, hk, k0, k1);
                            Tensor vb = rows(v, b, hk, k0, k1);
                            Tensor gob = rows(gOut, b, h, t0, t1);
                            Tensor scores = Tensor.empty(Shape.of(t1 - t0, k1 - k0), Checks.statType(q), q.device());
                            be.matmul(qb, false, kb, true, scores, false);
                            double scale = capScores(be, scores);
                            Tensor probs = Tensor.empty(scores.shape(), q.dtype(), q.device());
                            softmax(kernel, scores, t0, t1, k0, scale, probs, stats(lse, b, h, t0, t1), b, true);
                            be.matmul(probs, true, gob, false, rows(gv, b, hk, k0, k1), true);
                            // the scores are spent (kept only when capped: the cap's derivative needs them)
                            Tensor gradProbs = spec.softcap() > 0 ? Tensor.empty(scores.shape(), scores.dtype(), q.device()) : scores;
                            be.matmul(gob, false, vb, true, gradProbs, false);
                            Tensor gradScores = probs; // dS overwrites P element by element (same index read then written)
                            kernel.maskedSoftmaxBackward(probs, gradProbs, stats(delta, b, h, t0, t1), scale, gradScores);
                            if (spec.softcap() > 0) { // through z = cap tanh(scale s / cap): dS *= (1 - (z/cap)^2) * scale
                                Tensor z = scores.dtype() == gradScores.dtype() ? scores : scores.cast(gradScores.dtype());
                                SoftcapKernel.on(z).backward(z, gradScores, spec.softcap(), gradScores);
                                be.scale(gradScores, spec.scale(), gradScores);
                            }
                            be.matmul(gradScores, false, kb, false, rows(gq, b, h, t0, t1), false);
                            be.matmul(gradScores, true, qb, false, rows(gk, b, hk, k0, k1), true);
                        }
                    }
                }
            }
            delta.close();
            Tensor gkOut = gk.cast(k.dtype());
            Tensor gvOut = gv.cast(v.dtype());
            if (gkOut != gk) {
                gk.close();
                gv.close();
            }
            return new Tensor[] {gq, gkOut, gvOut};
        }
    }
}
