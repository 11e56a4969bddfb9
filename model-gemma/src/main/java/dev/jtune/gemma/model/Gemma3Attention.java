package dev.jtune.gemma.model;

import dev.jtune.engine.Ops;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.LinearGroup;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.RmsNorm;
import dev.jtune.engine.ops.RmsNorm.Scale;
import dev.jtune.gemma.config.Gemma3Config;

/**
 * A layer's {@code self_attn}: {@code q_proj}, {@code k_proj}, {@code v_proj} [heads * head_dim, hidden], {@code o_proj}
 * [hidden, heads * head_dim] (no biases), and the per-head {@code q_norm}, {@code k_norm} (Gemma's 1 + w) [head_dim].
 */
public final class Gemma3Attention extends Module {
    private final Gemma3Config config;
    private final int layer;
    private final Linear qProj;
    private final Linear kProj;
    private final Linear vProj;
    private final Linear oProj;
    private final RmsNorm qNorm;
    private final RmsNorm kNorm;
    /** q, k and v as one product where it can ({@link LinearGroup}): the heads are then views of its output. */
    private final LinearGroup qkv;

    Gemma3Attention(Gemma3Config config, int layer, DequantWorkspace workspace) {
        this.config = config;
        this.layer = layer;
        long h = config.hiddenSize();
        long q = (long) config.numAttentionHeads() * config.headDim();
        long kv = (long) config.numKeyValueHeads() * config.headDim();
        qProj = child("q_proj", new Linear(h, q, Linear.Bias.NONE, workspace));
        kProj = child("k_proj", new Linear(h, kv, Linear.Bias.NONE, workspace));
        vProj = child("v_proj", new Linear(h, kv, Linear.Bias.NONE, workspace));
        oProj = child("o_proj", new Linear(q, h, Linear.Bias.NONE, workspace));
        qNorm = child("q_norm", new RmsNorm(config.headDim(), config.rmsNormEps(), Scale.ONE_PLUS_WEIGHT));
        kNorm = child("k_norm", new RmsNorm(config.headDim(), config.rmsNormEps(), Scale.ONE_PLUS_WEIGHT));
        qkv = new LinearGroup(qProj, kProj, vProj);
    }

    public Linear qProj() {
        return qProj;
    }

    public Linear kProj() {
        return kProj;
    }

    public Linear vProj() {
        return vProj;
    }

    public Linear oProj() {
        return oProj;
    }

    public RmsNorm qNorm() {
        return qNorm;
    }

    public RmsNorm kNorm() {
        return kNorm;
    }

    /** q_proj, k_proj and v_proj as one group (fused where {@link LinearGroup#fused} says). */
    public LinearGroup qkv() {
        return qkv;
    }

    /** q, k, v as [B, H, T, D] after the q/k norms and RoPE, from the normed input h [B * T, hidden]. */
    Tensor[] projectQkv(Tensor h, long b, long t, Tensor positions) {
        int hq = config.numAttentionHeads();
        int hkv = config.numKeyValueHeads();
        int d = config.headDim();
        Tensor q;
        Tensor k;
        Tensor v;
        if (qkv.fused(h)) {
            // one product [B * T, (Hq + 2 Hkv) D]: each of q, k, v a view of its heads, the rows Hq + 2 Hkv heads apart
            Tensor[] heads = Ops.split(qkv.forward(h).view(b, t, hq + 2L * hkv, d), 2, hq, hkv, hkv);
            q = heads[0];
            k = heads[1];
            v = heads[2];
        } else {
            Tensor[] parts = qkv.forwardEach(h); // each projection's own (their LoRA down products shared where on)
            q = parts[0].reshape(b, t, hq, d);
            k = parts[1].reshape(b, t, hkv, d);
            v = parts[2].reshape(b, t, hkv, d);
        }
        // the norm and RoPE read q and k in the projection's [B, T, H, D] layout and write [B, H, T, D]: no transposing copy
        // (the two ops copy a fused product's q and k first: the norm reads contiguous rows); attention reads v as it lies
        return new Tensor[] {normAndRotate(qNorm, q.transpose(1, 2), positions), normAndRotate(kNorm, k.transpose(1, 2), positions),
                v.transpose(1, 2)};
    }

    /** A head norm then RoPE ({@link RmsNorm#forwardRotated}: one op, or the two with {@code -Djtune.fusedNormRope=false}). */
    private Tensor normAndRotate(RmsNorm norm, Tensor x, Tensor positions) {
        // linear RoPE scaling: 8 on the 4B+ models' global layers
        return norm.forwardRotated(x, positions, config.ropeTheta(layer), config.ropeScalingFactor(layer));
    }
}
