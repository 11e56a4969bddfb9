package dev.jtune.gemma.model;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.ops.Activations;
import dev.jtune.gemma.config.Gemma3Config;

/** A layer's {@code mlp}: GeGLU, {@code down_proj(gelu_tanh(gate_proj(x)) * up_proj(x))}, no biases. */
public final class Gemma3Mlp extends Module {
    private final Linear gateProj;
    private final Linear upProj;
    private final Linear downProj;

    Gemma3Mlp(Gemma3Config config, DequantWorkspace workspace) {
        long h = config.hiddenSize();
        long i = config.intermediateSize();
        gateProj = child("gate_proj", new Linear(h, i, Linear.Bias.NONE, workspace));
        upProj = child("up_proj", new Linear(h, i, Linear.Bias.NONE, workspace));
        downProj = child("down_proj", new Linear(i, h, Linear.Bias.NONE, workspace));
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

    public Tensor forward(Tensor x) {
        return downProj.forward(Activations.geglu(gateProj.forward(x), upProj.forward(x)));
    }
}
