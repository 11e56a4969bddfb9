package dev.jtune.gemma.vision;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.ops.Activations;
import dev.jtune.gemma.config.Gemma3VisionConfig;

/** SigLIP's {@code mlp}: {@code fc2(gelu_tanh(fc1(x)))}, both biased. */
public final class SiglipMlp extends Module {
    private final Linear fc1;
    private final Linear fc2;

    SiglipMlp(Gemma3VisionConfig c, DequantWorkspace workspace) {
        fc1 = child("fc1", new Linear(c.hiddenSize(), c.intermediateSize(), Linear.Bias.WITH, workspace));
        fc2 = child("fc2", new Linear(c.intermediateSize(), c.hiddenSize(), Linear.Bias.WITH, workspace));
    }

    public Tensor forward(Tensor x) {
        return fc2.forward(Activations.gelu(fc1.forward(x)));
    }
}
