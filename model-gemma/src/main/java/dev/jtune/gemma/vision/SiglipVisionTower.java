package dev.jtune.gemma.vision;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.LayerNorm;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.ModuleList;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.gemma.model.Gemma3Model;

/**
 * The SigLIP vision encoder (Gemma 3's {@code vision_tower}), a tree whose parameter names are HF's in memory
 * (transformers 5: the tower is the vision transformer itself; older files add a {@code vision_model.} level, which
 * {@link dev.jtune.gemma.model.CheckpointLayout} maps):
 * <pre>
 * embeddings.patch_embedding.{weight, bias}     [hidden, C, p, p], [hidden]
 * embeddings.position_embedding.weight          [patches, hidden]
 * encoder.layers.N.layer_norm1.{weight, bias}
 * encoder.layers.N.self_attn.{k,v,q,out}_proj.{weight, bias}
 * encoder.layers.N.layer_norm2.{weight, bias}
 * encoder.layers.N.mlp.{fc1, fc2}.{weight, bias}
 * post_layernorm.{weight, bias}
 * </pre>
 * Gemma 3 uses no pooling head ({@code vision_use_head: false}): the output is the post-LayerNorm patch states.
 */
public final class SiglipVisionTower extends Module {
    private final SiglipEmbeddings embeddings;
    private final Encoder encoder;
    private final LayerNorm postLayernorm;

    public SiglipVisionTower(Gemma3VisionConfig c, DequantWorkspace workspace) {
        embeddings = child("embeddings", new SiglipEmbeddings(c));
        encoder = child("encoder", new Encoder(c, workspace));
        postLayernorm = child("post_layernorm", new LayerNorm(c.hiddenSize(), c.layerNormEps()));
    }

    public SiglipEmbeddings embeddings() {
        return embeddings;
    }

    public ModuleList<SiglipEncoderLayer> layers() {
        return encoder.layers;
    }

    /** pixels [B, C, S, S] (normalized, at the configured size) to the last hidden state [B, patches, hidden]. */
    public Tensor forward(Tensor pixels) {
        return forward(pixels, Gemma3Model.Checkpointing.NONE, ActivationStore.DEVICE);
    }

    /**
     * {@link #forward(Tensor)} under the run's checkpointing: with any mode but NONE, each encoder layer that a gradient
     * goes through keeps only its input (in {@code store}) and runs again in backward, as HF checkpoints SiglipEncoder's
     * layers under gradient_checkpointing (the tower's layers are not split in halves).
     */
    public Tensor forward(Tensor pixels, Gemma3Model.Checkpointing checkpointing, ActivationStore store) {
        Tensor h = embeddings.forward(pixels);
        for (SiglipEncoderLayer layer : encoder.layers) {
            if (Autograd.needsGrad(h) || (Autograd.isEnabled() && layer.trains())) {
                h = checkpointing == Gemma3Model.Checkpointing.NONE ? layer.forward(h)
                        : Autograd.checkpoint(in -> layer.forward(in[0]), store, h);
            } else { // no gradient goes through: nothing needs the layer's intermediates, a scope per layer frees them as it goes
                try (Scope one = Scope.open("vision layer")) {
                    h = one.keep(layer.forward(h));
                }
            }
        }
        return postLayernorm.forward(h);
    }

    /** HF's {@code SiglipEncoder}: only its {@code layers}. */
    static final class Encoder extends Module {
        final ModuleList<SiglipEncoderLayer> layers;

        Encoder(Gemma3VisionConfig c, DequantWorkspace workspace) {
            layers = child("layers", new ModuleList<>());
            for (int i = 0; i < c.layers(); i++) {
                layers.add(new SiglipEncoderLayer(c, workspace));
            }
        }
    }
}
