package dev.jtune.gemma.model;

import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Embedding;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.ModuleList;
import dev.jtune.engine.nn.RmsNorm;
import dev.jtune.engine.ops.RmsNorm.Scale;
import dev.jtune.gemma.config.Gemma3Config;

/** HF's {@code model}: {@code embed_tokens} [vocab, hidden], {@code layers.N}, the final {@code norm} [hidden]. */
public final class Gemma3TextModel extends Module {
    private final Embedding embedTokens;
    private final ModuleList<Gemma3DecoderLayer> layers;
    private final RmsNorm norm;

    Gemma3TextModel(Gemma3Config config, DequantWorkspace workspace) {
        embedTokens = child("embed_tokens", new Embedding(config.vocabSize(), config.hiddenSize()));
        layers = child("layers", new ModuleList<>());
        for (int i = 0; i < config.numHiddenLayers(); i++) {
            layers.add(new Gemma3DecoderLayer(config, i, workspace));
        }
        norm = child("norm", new RmsNorm(config.hiddenSize(), config.rmsNormEps(), Scale.ONE_PLUS_WEIGHT));
    }

    public Embedding embedTokens() {
        return embedTokens;
    }

    public ModuleList<Gemma3DecoderLayer> layers() {
        return layers;
    }

    public RmsNorm norm() {
        return norm;
    }
}
