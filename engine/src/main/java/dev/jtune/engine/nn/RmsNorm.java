package dev.jtune.engine.nn;

import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.RmsNorm.Scale;

/**
 * RMSNorm over the last axis ({@link dev.jtune.engine.ops.RmsNorm}, fp32 statistics). Parameter {@code weight}
 * [size]; Gemma scales by {@code (1 + weight)} ({@link Scale#ONE_PLUS_WEIGHT}), so its weights start at 0.
 */
public final class RmsNorm extends Module {
    private final Parameter weight;
    private final double eps;
    private final Scale scale;

    public RmsNorm(long size, double eps, Scale scale) {
        this.weight = parameter("weight", Shape.of(size));
        this.eps = eps;
        this.scale = java.util.Objects.requireNonNull(scale, "scale");
    }

    public Parameter weightParameter() {
        return weight;
    }

    public Tensor weight() {
        return weight.tensor();
    }

    public double eps() {
        return eps;
    }

    public Tensor forward(Tensor x) {
        return dev.jtune.engine.ops.RmsNorm.apply(x, weight.value(), eps, scale);
    }

    /**
     * {@code Rope.apply(forward(x), positions, base, scaling)}, the q/k path ({@link dev.jtune.engine.ops.RmsNormRope}:
     * one op, or the two with {@code -Djtune.fusedNormRope=false}), x [B, H, T, D] as Rope takes it.
     */
    public Tensor forwardRotated(Tensor x, Tensor positions, double base, double scaling) {
        return dev.jtune.engine.ops.RmsNormRope.apply(x, weight.value(), eps, scale, positions, base, scaling);
    }

    /**
     * {@code {x + h, forward(x + h)}} as one op: the residual stream's add fused into the norm that follows it
     * ({@link dev.jtune.engine.ops.RmsNorm#applyResidual}).
     */
    public Tensor[] forwardResidual(Tensor x, Tensor h) {
        return dev.jtune.engine.ops.RmsNorm.applyResidual(x, h, weight.value(), eps, scale);
    }
}
