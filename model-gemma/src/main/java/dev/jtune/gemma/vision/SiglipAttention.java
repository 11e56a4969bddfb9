package dev.jtune.gemma.vision;

import dev.jtune.engine.DType;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionMask;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.gemma.config.Gemma3VisionConfig;

/**
 * SigLIP's {@code self_attn}: biased q/k/v/out projections and multi-head attention in which every patch of an image
 * sees every other (non-causal), scaled by {@code head_dim^-0.5}. The engine's attention takes the non-causal case as
 * one bidirectional group per image ({@link AttentionMask}); head sizes without fused kernels (SigLIP's 72) take its
 * blocked path.
 */
public final class SiglipAttention extends Module {
    private final Linear qProj;
    private final Linear kProj;
    private final Linear vProj;
    private final Linear outProj;
    private final int heads;
    private final int headDim;

    SiglipAttention(Gemma3VisionConfig c, DequantWorkspace workspace) {
        long h = c.hiddenSize();
        heads = c.heads();
        headDim = c.headDim();
        kProj = child("k_proj", new Linear(h, h, Linear.Bias.WITH, workspace));
        vProj = child("v_proj", new Linear(h, h, Linear.Bias.WITH, workspace));
        qProj = child("q_proj", new Linear(h, h, Linear.Bias.WITH, workspace));
        outProj = child("out_proj", new Linear(h, h, Linear.Bias.WITH, workspace));
    }

    /** x [B, N, hidden] to [B, N, hidden]. */
    public Tensor forward(Tensor x) {
        long b = x.dim(0);
        long n = x.dim(1);
        Tensor q = heads(qProj.forward(x), b, n);
        Tensor k = heads(kProj.forward(x), b, n);
        Tensor v = heads(vProj.forward(x), b, n);
        Tensor zeros = Tensor.zeros(Shape.of(b, n), DType.I32, x.device()); // one sample and one bidirectional group per image
        Tensor o = Attention.causal(q, k, v, new AttentionSpec(0, 1.0 / Math.sqrt(headDim), 512), new AttentionMask(zeros, zeros));
        return outProj.forward(o.transpose(1, 2).reshape(b, n, (long) heads * headDim));
    }

    private Tensor heads(Tensor t, long b, long n) {
        return t.reshape(b, n, heads, headDim).transpose(1, 2);
    }
}
