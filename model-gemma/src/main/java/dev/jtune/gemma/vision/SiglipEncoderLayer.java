package dev.jtune.gemma.vision;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.LayerNorm;
import dev.jtune.engine.nn.Module;
import dev.jtune.gemma.config.Gemma3VisionConfig;

/** A pre-norm SigLIP block: {@code x + attn(ln1(x))}, then {@code + mlp(ln2(.))}. */
public final class SiglipEncoderLayer extends Module {
    private final LayerNorm layerNorm1;
    private final SiglipAttention selfAttn;
    private final LayerNorm layerNorm2;
    private final SiglipMlp mlp;

    SiglipEncoderLayer(Gemma3VisionConfig c, DequantWorkspace workspace) {
        layerNorm1 = child("layer_norm1", new LayerNorm(c.hiddenSize(), c.layerNormEps()));
        selfAttn = child("self_attn", new SiglipAttention(c, workspace));
        layerNorm2 = child("layer_norm2", new LayerNorm(c.hiddenSize(), c.layerNormEps()));
        mlp = child("mlp", new SiglipMlp(c, workspace));
    }

    public Tensor forward(Tensor x) {
        Tensor h = x.add(selfAttn.forward(layerNorm1.forward(x)));
        return h.add(mlp.forward(layerNorm2.forward(h)));
    }
}
