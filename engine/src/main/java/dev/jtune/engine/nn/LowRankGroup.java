package dev.jtune.engine.nn;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.Transpose;
import dev.jtune.engine.backend.TensorInternals;

import java.util.List;

/**
 * Low-rank updates of linears that read one input, with their down products as one: for parts i whose updates are
 * {@code s (x A_i^T) B_i^T} (LoRA without dropout, one scale s), {@code D = s x [A_1; ...; A_n]^T} [rows, R] is one
 * product instead of n (x read once: Gemma's q/k/v and gate/up), and each part's up product adds D's columns of its
 * rank into the part's base output. Backward: each part's {@code g_i B_i} is written into its columns of one buffer dD,
 * x's gradient is {@code s dD [A_1; ...; A_n]}, one product instead of n (added into x's gradient so far where there is
 * one), and A's and B's gradients are the parts' own products (so an fp32 leaf still takes its gradient in fp32,
 * {@link Ops#weightGradient}). The stacked [A_1; ...; A_n] is a view where the A's lie one after another in one
 * buffer (the trainer's {@link ComputeCopies} lays them out so), else a copy for the op.
 *
 * <p>The values are the separate updates' but for the order of x's gradient sum (one product over R, against n
 * products added into it one after another). Off unless {@code -Djtune.sharedLoraDown=true}: measured on no GPU yet.
 */
final class LowRankGroup {
    /** The switch, read at each use so a test can compare both ways in one process. */
    static final String PROPERTY = "jtune.sharedLoraDown";

    private LowRankGroup() {
    }

    static boolean enabled() {
        return Boolean.getBoolean(PROPERTY);
    }

    /**
     * Whether {@code updates} can share x's down product: at least two, one scale, one dtype (their products', which
     * the base outputs must have too: {@link #addTo}), a 2-D x of their input width.
     */
    static boolean applies(Tensor x, List<Adapter.LowRank> updates) {
        if (updates.size() < 2 || x.rank() != 2) {
            return false;
        }
        Adapter.LowRank first = updates.getFirst();
        DType compute = first.a().dtype();
        for (Adapter.LowRank u : updates) {
            if (u.scale() != first.scale() || u.a().dtype() != compute || u.b().dtype() != compute || u.a().rank() != 2
                    || u.b().rank() != 2 || u.a().dim(1) != x.dim(1) || u.b().dim(1) != u.a().dim(0)) {
                return false;
            }
        }
        return true;
    }

    /**
     * Each ys[i] (part i's base output [rows, out_i], a fresh contiguous product in the updates' dtype, consumed: the
     * result shares its storage) with its update for x added.
     */
    static Tensor[] addTo(Tensor[] ys, Tensor x, List<Adapter.LowRank> updates) {
        int n = updates.size();
        DType compute = updates.getFirst().a().dtype();
        double scale = updates.getFirst().scale();
        Tensor xc = x.cast(compute);
        long[] columns = new long[n + 1];
        for (int i = 0; i < n; i++) {
            columns[i + 1] = columns[i] + updates.get(i).a().dim(0);
        }
        long rank = columns[n];
        Tensor[] inputs = new Tensor[1 + 3 * n];
        inputs[0] = xc;
        for (int i = 0; i < n; i++) {
            inputs[1 + i] = updates.get(i).a();
            inputs[1 + n + i] = updates.get(i).b();
            inputs[1 + 2 * n + i] = ys[i];
        }
        Tensor[] kept = new Tensor[2]; // the stacked A's and D, from forward to backward
        boolean recorded = Autograd.needsGrad(inputs); // else no backward frees them: the forward does
        return Autograd.opMulti("lora group", () -> {
            kept[0] = stacked(updates, xc.dim(1), rank);
            kept[1] = Tensor.empty(Shape.of(xc.dim(0), rank), compute, xc.device());
            Ops.matmulInto(kept[1], 0, xc, kept[0], Transpose.B, scale, Ops.Into.WRITE);
            Tensor[] out = new Tensor[n];
            for (int i = 0; i < n; i++) {
                out[i] = ys[i].detach();
                Ops.matmulInto(out[i], 0, columns(kept[1], columns, i), updates.get(i).b(), Transpose.B, 1.0, Ops.Into.ADD);
            }
            if (!recorded) { // an evaluation, or a checkpoint's first run: [rows, R] a group and layer is not kept to the scope's end
                kept[1].close();
                kept[0].close();
            }
            return out;
        }, gs -> {
            Tensor[] grads = new Tensor[inputs.length];
            boolean every = java.util.Arrays.stream(gs).allMatch(java.util.Objects::nonNull);
            Tensor gd = every ? Tensor.empty(kept[1].shape(), compute, xc.device()) : Tensor.zeros(kept[1].shape(), compute, xc.device());
            for (int i = 0; i < n; i++) {
                Tensor g = gs[i];
                if (g == null) {
                    continue;
                }
                Tensor gi = g.dtype() == compute ? g : g.cast(compute);
                Tensor b = updates.get(i).b();
                Ops.matmulInto(gd, columns[i], gi, b, Transpose.NONE, 1.0, Ops.Into.WRITE); // dD_i = g_i B_i
                if (b.requiresGrad()) {
                    grads[1 + n + i] = Ops.weightGradient(gi, columns(kept[1], columns, i), b, 1.0); // dB_i = g_i^T D_i
                }
                grads[1 + 2 * n + i] = g; // the base output's gradient passes through
            }
            for (int i = 0; i < n; i++) {
                Tensor a = updates.get(i).a();
                if (a.requiresGrad()) {
                    grads[1 + i] = Ops.weightGradient(columns(gd, columns, i), xc, a, scale); // dA_i = s dD_i^T x
                }
            }
            if (xc.requiresGrad()) {
                grads[0] = Ops.inputGradient(xc, gd, kept[0], Transpose.B, scale); // dx = s dD [A_1; ...; A_n]
            }
            gd.close();
            kept[1].close();
            kept[0].close(); // a view's close leaves the copies' buffer to its owner
            return grads;
        }, inputs);
    }

    /** Columns [columns[i], columns[i + 1]) of t [rows, R]: part i's rank. */
    private static Tensor columns(Tensor t, long[] columns, int i) {
        return t.slice(1, columns[i], columns[i + 1]);
    }

    /**
     * [A_1; ...; A_n] [R, in]: a view when the A's lie one after another in one storage (contiguous, each starting where
     * the last ends), else a copy.
     */
    static Tensor stacked(List<Adapter.LowRank> updates, long in, long rank) {
        Tensor first = updates.getFirst().a();
        boolean adjacent = true;
        long next = first.offset();
        for (Adapter.LowRank u : updates) {
            Tensor a = u.a();
            adjacent &= a.isContiguous() && a.offset() == next && TensorInternals.storage(a) == TensorInternals.storage(first);
            next = a.offset() + a.numel();
        }
        if (adjacent) {
            return Tensor.view(TensorInternals.storage(first), Shape.of(rank, in), Shape.of(rank, in).contiguousStrides(), first.offset(),
                    first.dtype());
        }
        return Ops.concat(0, updates.stream().map(Adapter.LowRank::a).toArray(Tensor[]::new));
    }
}
