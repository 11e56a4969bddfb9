package dev.jtune.engine.ops;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.Node;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.RmsNormKernel;

/**
 * RMSNorm over the last axis with fp32 statistics. Gemma scales by {@code (1 + w)} ({@link Scale#ONE_PLUS_WEIGHT});
 * the per-row 1/rms is saved for backward and freed with the graph.
 */
public final class RmsNorm {
    /** What multiplies the normalized row: the weight, or Gemma's {@code 1 + weight} (its weights start at 0). */
    public enum Scale { WEIGHT, ONE_PLUS_WEIGHT }

    private RmsNorm() {
    }

    public static Tensor apply(Tensor x, Tensor weight, double eps, Scale scale) {
        String op = "rmsNorm";
        java.util.Objects.requireNonNull(scale, "scale");
        boolean offsetOne = scale == Scale.ONE_PLUS_WEIGHT;
        Checks.floating(op, x, "x");
        Checks.floating(op, weight, "weight");
        Checks.rank(op, weight, 1, "weight");
        Checks.sameDevice(op, x, weight);
        if (x.dim(-1) != weight.dim(0)) {
            throw new ShapeException(op + ": x " + x.shape() + " and weight " + weight.shape() + " differ in the normalized size");
        }
        Tensor rows = Checks.rows(x);
        Tensor out;
        Tensor rstd;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            out = Tensor.empty(rows.shape(), x.dtype(), x.device());
            rstd = Tensor.empty(Shape.of(rows.dim(0)), Checks.statType(x), x.device());
            if (out.numel() > 0) {
                RmsNormKernel.on(x).forward(rows, weight.contiguous(), eps, offsetOne, out, rstd);
            }
            out = out.reshape(x.shape().toArray());
        }
        Node node = Autograd.attach(op, out, g -> {
            Tensor gx = Tensor.empty(rows.shape(), x.dtype(), x.device());
            Tensor gw = weight.requiresGrad() ? Tensor.empty(weight.shape(), Checks.statType(x), x.device()) : null;
            if (gx.numel() > 0) {
                RmsNormKernel.on(x).backward(rows, weight.contiguous(), rstd, offsetOne, Checks.rows(g), gx, gw);
            } else if (gw != null) {
                Backends.of(x).fill(gw, 0.0);
            }
            return new Tensor[] {gx.reshape(x.shape().toArray()), gw == null ? null : gw.cast(weight.dtype())};
        }, x, weight);
        if (node != null) {
            node.own(rstd);
        } else {
            rstd.close();
        }
        return out;
    }
}
