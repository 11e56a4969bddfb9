package dev.jtune.gemma.model;

import dev.jtune.engine.DType;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.Transpose;
import dev.jtune.engine.ops.Softmax;
import dev.jtune.gemma.config.Gemma3Config;

/**
 * Keys and values of past positions, per layer, for generation. Full-attention layers keep every position up to
 * a capacity; sliding layers keep only their window, as a ring (slot = position mod window): attention over a
 * set of keys does not depend on their order, and RoPE was applied at each key's true position when cached.
 * Allocated in the current scope.
 */
public final class KvCache {
    private final Gemma3Config config;
    private final Tensor[] keys;
    private final Tensor[] values;
    private final long[] filled;

    public KvCache(Gemma3Model model, int capacity) {
        this.config = model.config();
        int layers = config.numHiddenLayers();
        this.keys = new Tensor[layers];
        this.values = new Tensor[layers];
        this.filled = new long[layers];
        for (int i = 0; i < layers; i++) {
            long slots = config.isSliding(i) ? Math.min(capacity, config.slidingWindow()) : capacity;
            Shape s = Shape.of(1, config.numKeyValueHeads(), slots, config.headDim());
            keys[i] = Tensor.zeros(s, model.dtype(), model.device());
            values[i] = Tensor.zeros(s, model.dtype(), model.device());
        }
    }

    private long slots(int layer) {
        return keys[layer].dim(2);
    }

    /** Stores k, v [1, Hkv, n, D] of positions start..start+n-1 (only the last window's worth on sliding layers). */
    void append(int layer, Tensor k, Tensor v, long start) {
        long n = k.dim(2);
        long slots = slots(layer);
        boolean ring = config.isSliding(layer);
        if (!ring && start + n > slots) {
            throw new ShapeException("KV cache: position " + (start + n - 1) + " beyond the capacity of " + slots + " tokens");
        }
        long from = Math.max(start, start + n - slots); // older positions would be overwritten anyway
        for (long p = from; p < start + n; ) {
            long slot = p % slots;
            long run = Math.min(start + n - p, slots - slot); // contiguous until the ring wraps
            Ops.copyInto(k.slice(2, p - start, p - start + run), keys[layer].slice(2, slot, slot + run));
            Ops.copyInto(v.slice(2, p - start, p - start + run), values[layer].slice(2, slot, slot + run));
            p += run;
        }
        filled[layer] = Math.min(slots, Math.max(filled[layer], start + n));
    }

    /** Attention of one new query q [1, Hq, 1, D] over every cached key (scores capped when softcap > 0): [1, Hq * D]. */
    Tensor attend(int layer, Tensor q, double scale, double softcap) {
        long hkv = config.numKeyValueHeads();
        long groups = config.numAttentionHeads() / hkv;
        long d = config.headDim();
        long len = filled[layer];
        Tensor k = keys[layer].slice(2, 0, len).reshape(hkv, len, d);
        Tensor v = values[layer].slice(2, 0, len).reshape(hkv, len, d);
        Tensor q3 = q.reshape(hkv, groups, d); // query heads of one KV head are adjacent
        Tensor scores = Ops.matmul(q3, k, Transpose.B, DType.F32).scale(scale);
        if (softcap > 0) {
            scores = dev.jtune.engine.ops.Softcap.apply(scores, softcap);
        }
        Tensor probs = Softmax.softmax(scores, -1).cast(q.dtype());
        return probs.matmul(v).reshape(1, hkv * groups * d);
    }
}
