package dev.jtune.engine;

import java.util.ArrayDeque;
import java.util.EnumMap;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * The casts of leaves (LoRA's fp32 weights in their bf16 compute dtype) that one checkpoint's first run made, kept for
 * its recomputation in backward, which uses them instead of casting again (one launch per weight and step fewer: 252
 * for Gemma 3 270M's adapters). A set is active, on a per-thread stack, while its checkpoint's function runs: first
 * recording, then in backward replaying, through the recomputation's own backward (so checkpoints nested in it find
 * it too). Kept tensors live in the scope current when the checkpoint was called and are freed when its backward is
 * done, or with that scope if backward never comes. They assume what checkpointing assumes anyway: the leaves do not
 * change between forward and backward.
 */
final class KeptCasts {
    private static final ThreadLocal<ArrayDeque<KeptCasts>> ACTIVE = ThreadLocal.withInitial(ArrayDeque::new);

    private final Scope owner;
    private final Map<Tensor, Map<DType, Tensor>> casts = new IdentityHashMap<>();
    private boolean replaying;

    /** An empty set whose tensors {@code owner} holds (the scope current at the checkpoint's call). */
    KeptCasts(Scope owner) {
        this.owner = owner;
    }

    /** Makes this set the innermost active one, recording or replaying, until the handle is closed. */
    Scope.Entered activate(boolean replay) {
        replaying = replay;
        ArrayDeque<KeptCasts> active = ACTIVE.get();
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
        ArrayDeque<KeptCasts> active = ACTIVE.get();
        for (KeptCasts set : active) {
            Tensor kept = set.find(leaf, dtype);
            if (kept != null) {
                // a leaf's gradient may come back in the cast's dtype: it is converted as it accumulates
                return Autograd.op("cast (kept)", kept::detach, g -> new Tensor[] {g}, leaf);
            }
        }
        KeptCasts innermost = active.peek();
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

    private Tensor find(Tensor leaf, DType dtype) {
        Map<DType, Tensor> byType = casts.get(leaf);
        Tensor kept = byType == null ? null : byType.get(dtype);
        return kept == null || kept.isClosed() ? null : kept;
    }

    /**
     * After a first run that recorded no graph (grad off, or a checkpoint nested in another's first run): the casts
     * move to the enclosing active set when it records (its recomputation will want them), else they are freed.
     */
    void handOver() {
        KeptCasts enclosing = ACTIVE.get().peek();
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

    /** Frees every kept cast. */
    void free() {
        casts.values().forEach(byType -> byType.values().forEach(Tensor::close));
        casts.clear();
    }
}
