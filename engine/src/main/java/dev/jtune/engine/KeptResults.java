package dev.jtune.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * What one checkpoint's first run made and its recomputation in backward reuses instead of making again:
 * <ul>
 *   <li>casts of leaves (LoRA's fp32 weights in their bf16 compute dtype), one launch per weight and step fewer (252
 *       for Gemma 3 270M's adapters), found by leaf and dtype; or all of them made before the step in one launch
 *       ({@link #provide}, nn.ComputeCopies), then found the same way in the first run and the recomputation;</li>
 *   <li>results of costly ops (a global attention layer's output and log-sum-exp: its forward is quadratic in the
 *       sequence, the kept tensors linear), found by call order, for plain checkpoints only (a tiled checkpoint's
 *       tiles may come back in another order).</li>
 * </ul>
 * A set is active, on a per-thread stack, while its checkpoint's function runs: first recording, then in backward
 * replaying, through the recomputation's own backward (so checkpoints nested in it find its casts too). Kept tensors
 * live in the scope current when the checkpoint was called and are freed when its backward is done, or with that
 * scope if backward never comes. They assume what checkpointing assumes anyway: the leaves do not change between
 * forward and backward, and the function does the same things both times.
 */
final class KeptResults {
    private static final ThreadLocal<ArrayDeque<KeptResults>> ACTIVE = ThreadLocal.withInitial(ArrayDeque::new);

    /** An op's kept results and what identifies the call that made them (the op, its shapes and settings). */
    private record Made(String key, Tensor[] results) {
    }

    private final Scope owner;
    private final boolean keepsResults;
    private final Map<Tensor, Map<DType, Tensor>> casts = new IdentityHashMap<>();
    private final List<Made> made = new ArrayList<>();
    private boolean replaying;
    private int replayed;

    /**
     * An empty set whose tensors {@code owner} holds (the scope current at the checkpoint's call); {@code keepsResults}
     * whether it keeps ops' results too (a checkpoint whose recomputation repeats the first run's calls in order).
     */
    KeptResults(Scope owner, boolean keepsResults) {
        this.owner = owner;
        this.keepsResults = keepsResults;
    }

    /**
     * Casts made elsewhere, in one launch for many leaves (nn.ComputeCopies), found as a checkpoint's kept casts are
     * until the handle closes: the set never records (it is active as replaying) and is never freed here (the casts
     * belong to their maker). {@code castOfLeaf}: leaf to its cast.
     */
    static Scope.Entered provide(Map<Tensor, Tensor> castOfLeaf) {
        KeptResults set = new KeptResults(null, false);
        castOfLeaf.forEach((leaf, cast) -> set.casts.computeIfAbsent(leaf, l -> new EnumMap<>(DType.class)).put(cast.dtype(), cast));
        return set.activate(true);
    }

    /** Makes this set the innermost active one, recording or replaying, until the handle is closed. */
    Scope.Entered activate(boolean replay) {
        replaying = replay;
        replayed = 0;
        ArrayDeque<KeptResults> active = ACTIVE.get();
        active.push(this);
        return () -> active.removeFirstOccurrence(this);
    }

    /**
     * {@code leaf.cast(dtype)}, kept: a cast that an active set holds (the innermost first) is reused, its gradient
     * flowing to the leaf as a cast's would; otherwise the innermost set, when recording, keeps the new cast.
     */
    static Tensor cast(Tensor leaf, DType dtype) {
        if (leaf.dtype() == dtype || leaf.gradFn() != null) {
            return leaf.cast(dtype);
        }
        ArrayDeque<KeptResults> active = ACTIVE.get();
        for (KeptResults set : active) {
            Tensor kept = set.find(leaf, dtype);
            if (kept != null) {
                // a leaf's gradient may come back in the cast's dtype: it is converted as it accumulates
                return Autograd.castOfLeaf("cast (kept)", kept::detach, leaf);
            }
        }
        KeptResults innermost = active.peek();
        if (innermost == null || innermost.replaying || Autograd.needsGrad(leaf)) {
            return leaf.cast(dtype);
        }
        Tensor kept;
        try (Scope.Entered e = innermost.owner.enter()) {
            kept = leaf.cast(dtype);
        }
        innermost.casts.computeIfAbsent(leaf, l -> new EnumMap<>(DType.class)).put(dtype, kept);
        return kept.detach();
    }

    /**
     * {@code compute.get()}, kept: in the innermost checkpoint's first run its results are made in the checkpoint's
     * owner scope and kept; in its recomputation the call of the same order and {@code key} gets them back instead of
     * computing. Views are handed out (closing one leaves the kept tensor). Elsewhere, or where the calls do not match
     * (a function that did something else the second time), it computes.
     */
    static Tensor[] results(String key, Supplier<Tensor[]> compute) {
        KeptResults innermost = ACTIVE.get().peek();
        if (innermost == null || !innermost.keepsResults) {
            return compute.get();
        }
        if (innermost.replaying) {
            int i = innermost.replayed++;
            Made m = i < innermost.made.size() ? innermost.made.get(i) : null;
            if (m == null || !m.key().equals(key) || anyClosed(m.results())) {
                return compute.get();
            }
            return views(m.results());
        }
        if (Autograd.isEnabled()) {
            return compute.get(); // not a first run: a graph is recorded, nothing will be recomputed
        }
        Tensor[] results;
        try (Scope.Entered e = innermost.owner.enter()) {
            results = compute.get();
        }
        innermost.made.add(new Made(key, results));
        return views(results);
    }

    private static Tensor[] views(Tensor[] kept) {
        Tensor[] views = new Tensor[kept.length];
        for (int i = 0; i < kept.length; i++) {
            views[i] = kept[i].detach();
        }
        return views;
    }

    private static boolean anyClosed(Tensor[] kept) {
        for (Tensor t : kept) {
            if (t.isClosed()) {
                return true;
            }
        }
        return false;
    }

    private Tensor find(Tensor leaf, DType dtype) {
        Map<DType, Tensor> byType = casts.get(leaf);
        Tensor kept = byType == null ? null : byType.get(dtype);
        return kept == null || kept.isClosed() ? null : kept;
    }

    /**
     * After a first run that recorded no graph (grad off, or a checkpoint nested in another's first run): the casts
     * move to the enclosing active set when it records (its recomputation will want them), else they are freed. Ops'
     * results are freed: the enclosing recomputation runs this checkpoint's first run again, which computes them anew.
     */
    void handOver() {
        freeResults();
        KeptResults enclosing = ACTIVE.get().peek();
        if (enclosing == null || enclosing.replaying) {
            free();
            return;
        }
        casts.forEach((leaf, byType) -> byType.forEach((dtype, kept) -> {
            if (enclosing.find(leaf, dtype) == null) {
                enclosing.owner.adopt(kept.storage());
                enclosing.casts.computeIfAbsent(leaf, l -> new EnumMap<>(DType.class)).put(dtype, kept);
            } else {
                kept.close();
            }
        }));
        casts.clear();
    }

    /** Frees every kept cast and result. */
    void free() {
        casts.values().forEach(byType -> byType.values().forEach(Tensor::close));
        casts.clear();
        freeResults();
    }

    private void freeResults() {
        made.forEach(m -> {
            for (Tensor t : m.results()) {
                t.close();
            }
        });
        made.clear();
    }
}
