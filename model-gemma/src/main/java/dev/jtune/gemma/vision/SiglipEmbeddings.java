package dev.jtune.gemma.vision;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Embedding;
import dev.jtune.engine.nn.Module;
import dev.jtune.gemma.config.Gemma3VisionConfig;

/** SigLIP's {@code embeddings}: the patch embedding plus a learned position embedding per patch (no interpolation). */
public final class SiglipEmbeddings extends Module {
    private final PatchEmbedding patchEmbedding;
    private final Embedding positionEmbedding;

    SiglipEmbeddings(Gemma3VisionConfig c) {
        patchEmbedding = child("patch_embedding", new PatchEmbedding(c.channels(), c.patchSize(), c.hiddenSize()));
        positionEmbedding = child("position_embedding", new Embedding(c.patches(), c.hiddenSize()));
    }

    public PatchEmbedding patchEmbedding() {
        return patchEmbedding;
    }

    public Embedding positionEmbedding() {
        return positionEmbedding;
    }

    /** pixels [B, C, S, S] at the configured size to [B, N, hidden]: each patch's embedding plus its position's row. */
    public Tensor forward(Tensor pixels) {
        Tensor patches = patchEmbedding.forward(pixels);
        if (patches.dim(1) != positionEmbedding.weight().dim(0)) {
            throw new dev.jtune.engine.ShapeException("vision embeddings: " + patches.dim(1) + " patches from pixels " + pixels.shape()
                    + ", the position embedding has " + positionEmbedding.weight().dim(0) + " (images must be resized to the configured size)");
        }
        return patches.add(positionEmbedding.weight());
    }
}
