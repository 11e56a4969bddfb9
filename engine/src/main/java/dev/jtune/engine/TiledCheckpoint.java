package dev.jtune.engine;

import dev.jtune.engine.backend.Backends;

import java.util.function.UnaryOperator;

/**
 * A row-wise function run over tiles of rows, checkpointed tile by tile (Arctic's TiledMLP, Unsloth's tiled MLP): the
 * forward computes {@code fn} on rows [r0, r1) of x at a time without recording and keeps only x (in an
 * {@link ActivationStore}); backward recomputes each tile with recording on and differentiates it alone. Whatever fn
 * makes per row (a [rows, intermediate] MLP activation) exists for one tile at a time, in forward and in backward.
 *
 * <p>fn must be row-wise: row r of its output depends on row r of its input only, and every tensor it makes has the
 * tile's rows along dimension 0. Then the output and x's gradient are exactly the untiled ones (every row is computed
 * by the same ops on the same row). Random ops see the tile's place in the whole: {@link #elementOffset} gives the
 * counter at which a tile's tensor starts in the untiled one, so dropout drops what the untiled forward would. What
 * is summed over rows, the gradients of fn's parameters, is summed tile by tile: each tile's contribution reaches the
 * parameter's gradient (or its sink) as one contribution of a use, so the reduction order over rows changes.
 */
public final class TiledCheckpoint {
    private static final ThreadLocal<long[]> FIRST_ROW = ThreadLocal.withInitial(() -> new long[1]);

    private TiledCheckpoint() {
    }

    /**
     * {@code fn(x)}, computed {@code tileRows} rows of x at a time (the last tile may be shorter); x's inputs are kept
     * by {@code store} until backward. With a single tile this is {@link Autograd#checkpoint}.
     */
    public static Tensor apply(UnaryOperator<Tensor> fn, ActivationStore store, Tensor x, long tileRows) {
        if (x.rank() < 1) {
            throw new ShapeException("tiled checkpoint: the input must have rows, got " + x.describe());
        }
        if (tileRows < 1) {
            throw new IllegalArgumentException("tiled checkpoint: tiles of " + tileRows + " rows");
        }
        long n = x.dim(0);
        if (n <= tileRows) {
            return Autograd.checkpoint(in -> fn.apply(in[0]), store, x);
        }
        // the tiles' casts of weights are made once, kept for the other tiles and the recomputation (Autograd.castKept)
        KeptResults kept = new KeptResults(Scope.current(), false);
        Tensor out;
        try (Scope.Entered recording = kept.activate(false)) {
            out = forward(fn, x, tileRows);
        }
        if (!Autograd.isEnabled()) {
            kept.handOver();
            return out;
        }
        ActivationStore.Stashed stashed = store.stash(x);
        Node node = new Node("tiled checkpoint", new Tensor[] {x}, gradOut -> {
            try (Scope.Entered replaying = kept.activate(true)) {
                return backward(fn, stashed, x, gradOut, tileRows);
            } finally {
                kept.free();
            }
        });
        out.setGradFn(node);
        return out;
    }

    /** Every tile's output, each computed in a scope of its own without recording, copied into one tensor. */
    private static Tensor forward(UnaryOperator<Tensor> fn, Tensor x, long tileRows) {
        Scope outer = Scope.current();
        long n = x.dim(0);
        Tensor out = null;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (long r0 = 0; r0 < n; r0 += tileRows) {
                long r1 = Math.min(n, r0 + tileRows);
                try (Scope tile = Scope.open("tile"); Rows rows = enter(r0)) {
                    Tensor o = fn.apply(x.slice(0, r0, r1));
                    checkRows(o, r1 - r0);
                    if (out == null) {
                        try (Scope.Entered e = outer.enter()) {
                            long[] shape = o.shape().toArray();
                            shape[0] = n;
                            out = Tensor.empty(Shape.of(shape), o.dtype(), o.device());
                        }
                    }
                    Ops.copyInto(o, out.slice(0, r0, r1));
                }
            }
        }
        return out;
    }

    /**
     * x's gradient: per tile, the tile's rows of x restored as a new leaf, fn recomputed with recording on, an inner
     * backward from the tile's rows of {@code gradOut} (the parameters' gradients accumulate then), the leaf's
     * contributions summed straight into its rows of the result ({@link InputGradient}; rows that got none are zero).
     */
    private static Tensor[] backward(UnaryOperator<Tensor> fn, ActivationStore.Stashed stashed, Tensor x, Tensor gradOut, long tileRows) {
        long n = x.dim(0);
        try (Scope recompute = Scope.open("tiled recompute"); Autograd.GradMode on = Autograd.enableGrad()) {
            Tensor input = stashed.restore();
            Tensor dx = x.requiresGrad() ? Tensor.empty(x.shape(), x.dtype(), x.device()) : null;
            for (long r0 = 0; r0 < n; r0 += tileRows) {
                long r1 = Math.min(n, r0 + tileRows);
                try (Scope tile = Scope.open("tile"); Rows rows = enter(r0)) {
                    Tensor leaf = input.slice(0, r0, r1).detach();
                    InputGradient gradient = null;
                    if (dx != null) {
                        leaf.requiresGrad(true);
                        gradient = new InputGradient(tile, dx.slice(0, r0, r1));
                        Autograd.streamGradient(leaf, gradient);
                    }
                    Tensor o = fn.apply(leaf);
                    checkRows(o, r1 - r0);
                    if (o.requiresGrad()) {
                        Autograd.backward(o, gradOut.slice(0, r0, r1), Autograd.Graph.FREE);
                    }
                    if (gradient != null && gradient.sum() == null) {
                        Backends.of(dx).fill(dx.slice(0, r0, r1), 0);
                    }
                }
            }
            if (dx != null) {
                recompute.keep(dx);
            }
            return new Tensor[] {dx};
        }
    }

    private static void checkRows(Tensor o, long rows) {
        if (o.rank() < 1 || o.dim(0) != rows) {
            throw new ShapeException("tiled checkpoint: the function must be row-wise, but a tile of " + rows + " rows gave "
                    + o.describe());
        }
    }

    /**
     * Where a tensor made inside the current tile starts in the untiled one, in elements: the tile's first row times
     * the elements of one of its rows (0 outside a tile). Random ops add it to their counters.
     */
    public static long elementOffset(Tensor t) {
        long first = FIRST_ROW.get()[0];
        if (first == 0 || t.rank() < 1 || t.dim(0) == 0) {
            return 0;
        }
        return first * (t.numel() / t.dim(0));
    }

    /** Until closed, tensors made on this thread are rows from {@code firstRow} on (relative to an enclosing tile). */
    private static Rows enter(long firstRow) {
        long[] current = FIRST_ROW.get();
        long previous = current[0];
        current[0] = previous + firstRow;
        return () -> current[0] = previous;
    }

    /** Handle of {@link #enter}. */
    private interface Rows extends AutoCloseable {
        @Override
        void close();
    }
}
