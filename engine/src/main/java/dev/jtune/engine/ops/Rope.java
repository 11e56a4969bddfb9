package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.RopeKernel;

/**
 * Rotary position embedding (HF's rotate-half convention, fp32 angles as HF computes them). Its backward is the
 * inverse rotation of the gradient.
 */
public final class Rope {
    private Rope() {
    }

    /** x [B, H, T, D] (D even), positions I32 [B, T] or [T] (shared by the batch). */
    public static Tensor apply(Tensor x, Tensor positions, double base) {
        return apply(x, positions, base, 1.0);
    }

    /** As above with transformers' linear RoPE scaling (frequencies divided by {@code scaling}). */
    public static Tensor apply(Tensor x, Tensor positions, double base, double scaling) {
        String op = "rope";
        Checks.floating(op, x, "x");
        Checks.rank(op, x, 4, "x [B, H, T, D]");
        Checks.dtype(op, positions, DType.I32, "positions");
        Checks.sameDevice(op, x, positions);
        long b = x.dim(0);
        long t = x.dim(2);
        if (x.dim(3) % 2 != 0) {
            throw new ShapeException(op + ": head dimension " + x.dim(3) + " of " + x.shape() + " is odd");
        }
        boolean shared = positions.rank() == 1 && positions.dim(0) == t;
        boolean perBatch = positions.rank() == 2 && positions.dim(0) == b && positions.dim(1) == t;
        if (!shared && !perBatch) {
            throw new ShapeException(op + ": positions " + positions.shape() + " must be [T] or [B, T] for x " + x.shape());
        }
        Tensor pos = shared ? positions.unsqueeze(0).expand(dev.jtune.engine.Shape.of(b, t)).contiguous() : positions.contiguous();
        Tensor xc = x.contiguous();
        if (!(scaling > 0)) {
            throw new IllegalArgumentException(op + ": scaling must be positive, got " + scaling);
        }
        return Autograd.op(op, () -> rotate(xc, pos, base, scaling, false), g -> new Tensor[] {rotate(g.contiguous(), pos, base, scaling, true), null}, x, positions);
    }

    private static Tensor rotate(Tensor x, Tensor positions, double base, double scaling, boolean inverse) {
        Tensor out = Tensor.empty(x.shape(), x.dtype(), x.device());
        if (out.numel() > 0) {
            RopeKernel.on(x).rotate(x, positions, base, scaling, inverse, out);
        }
        return out;
    }
}
