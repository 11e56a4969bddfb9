package dev.jtune.engine.nn;

import dev.jtune.engine.Ops;
import dev.jtune.engine.ReducedAxis;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.RmsNorm.Scale;

/**
 * LayerNorm over the last axis with parameters {@code weight} and {@code bias} [size]:
 * {@code (x - mean) / sqrt(var + eps) * weight + bias}, var the biased variance as torch's. Composed from existing
 * ops, no kernel of its own: the centred row's RMS is exactly {@code sqrt(var + eps)}, so it is the RMSNorm (fp32
 * statistics) of {@code x - mean(x)}, plus the bias. Differentiable through those ops. The centred row is stored in x's
 * dtype before the norm (torch's kernel keeps it in fp32), so in 16 bits it may differ from torch by that rounding.
 */
public final class LayerNorm extends Module {
    private final Parameter weight;
    private final Parameter bias;
    private final double eps;

    public LayerNorm(long size, double eps) {
        this.weight = parameter("weight", Shape.of(size));
        this.bias = parameter("bias", Shape.of(size));
        this.eps = eps;
    }

    public Parameter weightParameter() {
        return weight;
    }

    public Parameter biasParameter() {
        return bias;
    }

    public double eps() {
        return eps;
    }

    public Tensor forward(Tensor x) {
        Tensor centred = x.sub(Ops.mean(x, -1, ReducedAxis.KEEP));
        return dev.jtune.engine.ops.RmsNorm.apply(centred, weight.value(), eps, Scale.WEIGHT).add(bias.value());
    }
}
