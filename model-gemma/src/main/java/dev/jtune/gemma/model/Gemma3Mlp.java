package dev.jtune.gemma.model;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.LinearGroup;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.ops.Activations;
import dev.jtune.gemma.config.Gemma3Config;

/** A layer's {@code mlp}: GeGLU, {@code down_proj(gelu_tanh(gate_proj(x)) * up_proj(x))}, no biases. */
public final class Gemma3Mlp extends Module {
    private final Linear gateProj;
    private final Linear upProj;
    private final Linear downProj;
    /** gate and up as one product where it can ({@link LinearGroup}): GeGLU then reads the two halves of its output. */
    private final LinearGroup gateUp;

    Gemma3Mlp(Gemma3Config config, DequantWorkspace workspace) {
        long h = config.hiddenSize();
        long i = config.intermediateSize();
        gateProj = child("gate_proj", new Linear(h, i, Linear.Bias.NONE, workspace));
        upProj = child("up_proj", new Linear(h, i, Linear.Bias.NONE, workspace));
        downProj = child("down_proj", new Linear(i, h, Linear.Bias.NONE, workspace));
        gateUp = new LinearGroup(gateProj, upProj);
    }

    public Linear gateProj() {
        return gateProj;
    }

    public Linear upProj() {
        return upProj;
    }

    public Linear downProj() {
        return downProj;
    }

    /** gate_proj and up_proj as one group (fused where {@link LinearGroup#fused} says). */
    public LinearGroup gateUp() {
        return gateUp;
    }

    public Tensor forward(Tensor x) {
        if (gateUp.fused(x)) {
            return downProj.forward(Activations.geglu(gateUp.forward(x)));
        }
        Tensor[] gu = gateUp.forwardEach(x); // each projection's own (their LoRA down products shared where on)
        return downProj.forward(Activations.geglu(gu[0], gu[1]));
    }
}
