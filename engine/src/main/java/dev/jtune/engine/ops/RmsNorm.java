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

    /** The checks both forms share: x and a 1-D weight of x's last size, floating, on one device. */
    private static void check(String op, Tensor x, Tensor weight, Scale scale) {
        java.util.Objects.requireNonNull(scale, "scale");
        Checks.floating(op, x, "x");
        Checks.floating(op, weight, "weight");
        Checks.rank(op, weight, 1, "weight");
        Checks.sameDevice(op, x, weight);
        if (x.dim(-1) != weight.dim(0)) {
            throw new ShapeException(op + ": x " + x.shape() + " and weight " + weight.shape() + " differ in the normalized size");
        }
    }

    public static Tensor apply(Tensor x, Tensor weight, double eps, Scale scale) {
        String op = "rmsNorm";
        check(op, x, weight, scale);
        boolean offsetOne = scale == Scale.ONE_PLUS_WEIGHT;
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

    /**
     * The residual stream's add and the norm of its result as one op: returns {@code {x + h, rmsNorm(x + h)}}, the sum
     * rounded to x's dtype as an add stores it, in one pass over the rows (one kernel instead of an add and a norm).
     * Backward gets both outputs' gradients at once ({@link Autograd#opMulti}) and gives x and h one gradient: the
     * norm's input gradient, rounded to x's dtype, plus the sum's own: the values of the unfused add and norm, bit for bit
     * (so checkpointing modes that fuse and those that do not give the same gradients).
     */
    public static Tensor[] applyResidual(Tensor x, Tensor h, Tensor weight, double eps, Scale scale) {
        String op = "rmsNorm(x + h)";
        check(op, x, weight, scale);
        boolean offsetOne = scale == Scale.ONE_PLUS_WEIGHT;
        Checks.sameDevice(op, x, h);
        if (!x.shape().equals(h.shape()) || x.dtype() != h.dtype()) {
            throw new ShapeException(op + ": x " + x.describe() + " and h " + h.describe() + " must have one shape and dtype");
        }
        Tensor xs = Checks.rows(x);
        Tensor hs = Checks.rows(h);
        Tensor sum;
        Tensor out;
        Tensor rstd;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            sum = Tensor.empty(xs.shape(), x.dtype(), x.device());
            out = Tensor.empty(xs.shape(), x.dtype(), x.device());
            rstd = Tensor.empty(Shape.of(xs.dim(0)), Checks.statType(x), x.device());
            if (out.numel() > 0) {
                RmsNormKernel.on(x).forwardResidual(xs, hs, weight.contiguous(), eps, offsetOne, sum, out, rstd);
            }
        }
        Tensor[] outs = Autograd.opMulti(op, () -> new Tensor[] {sum.reshape(x.shape().toArray()), out.reshape(x.shape().toArray())}, g -> {
            Tensor gSum = g[0] == null ? null : Checks.rows(g[0]);
            if (g[1] == null) { // only the sum was used: it passes its gradient to both addends; the weight's is zero
                Tensor both = gSum == null ? null : gSum.reshape(x.shape().toArray());
                return new Tensor[] {both, both, weight.requiresGrad() ? Tensor.zeros(weight.shape(), weight.dtype(), weight.device()) : null};
            }
            Tensor gx = Tensor.empty(sum.shape(), x.dtype(), x.device());
            Tensor gw = weight.requiresGrad() ? Tensor.empty(weight.shape(), Checks.statType(x), x.device()) : null;
            if (gx.numel() > 0) {
                RmsNormKernel.on(x).backwardResidual(sum, weight.contiguous(), rstd, offsetOne, Checks.rows(g[1]), gSum, gx, gw);
            } else if (gw != null) {
                Backends.of(x).fill(gw, 0.0);
            }
            Tensor both = gx.reshape(x.shape().toArray());
            return new Tensor[] {both, both, gw == null ? null : gw.cast(weight.dtype())};
        }, x, h, weight);
        Node node = outs[1].gradFn();
        if (node != null) {
            node.own(rstd);
        } else {
            rstd.close();
        }
        return outs;
    }
}
