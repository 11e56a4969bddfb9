package dev.jtune.gemma.vision;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.LayerNorm;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.ModuleList;
import dev.jtune.gemma.config.Gemma3VisionConfig;

/**
 * The SigLIP vision encoder as HF's {@code SiglipVisionModel} (Gemma 3's {@code vision_tower}), a tree whose
 * parameter names are HF's:
 * <pre>
 * vision_model.embeddings.patch_embedding.{weight, bias}     [hidden, C, p, p], [hidden]
 * vision_model.embeddings.position_embedding.weight          [patches, hidden]
 * vision_model.encoder.layers.N.layer_norm1.{weight, bias}
 * vision_model.encoder.layers.N.self_attn.{k,v,q,out}_proj.{weight, bias}
 * vision_model.encoder.layers.N.layer_norm2.{weight, bias}
 * vision_model.encoder.layers.N.mlp.{fc1, fc2}.{weight, bias}
 * vision_model.post_layernorm.{weight, bias}
 * </pre>
 * Gemma 3 uses no pooling head ({@code vision_use_head: false}): the output is the post-LayerNorm patch states.
 */
public final class SiglipVisionTower extends Module {
    private final VisionModel visionModel;

    public SiglipVisionTower(Gemma3VisionConfig config, DequantWorkspace workspace) {
        visionModel = child("vision_model", new VisionModel(config, workspace));
    }

    /** pixels [B, C, S, S] (normalized, at the configured size) to the last hidden state [B, patches, hidden]. */
    public Tensor forward(Tensor pixels) {
        return visionModel.forward(pixels);
    }

    public VisionModel visionModel() {
        return visionModel;
    }

    /** HF's {@code SiglipVisionTransformer}: embeddings, the encoder's layers, the post LayerNorm. */
    public static final class VisionModel extends Module {
        private final SiglipEmbeddings embeddings;
        private final Encoder encoder;
        private final LayerNorm postLayernorm;

        VisionModel(Gemma3VisionConfig c, DequantWorkspace workspace) {
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

        Tensor forward(Tensor pixels) {
            Tensor h = embeddings.forward(pixels);
            for (SiglipEncoderLayer layer : encoder.layers) {
                h = layer.forward(h);
            }
            return postLayernorm.forward(h);
        }
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
