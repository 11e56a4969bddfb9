package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.AttentionKernel;
import dev.jtune.engine.fused.RopeKernel;

/**
 * Rotary position embedding (HF's rotate-half convention, fp32 angles as HF computes them). Its backward is the
 * inverse rotation of the gradient. The kernel reads and writes strided rows, so x may be a view (the attention
 * path's q and k are the transposed view of the projection's [B, T, H, D]): the output is a contiguous
 * [B, H, T, D] and x's gradient comes back in x's own layout, with no transposing copy either way.
 */
public final class Rope {
    private Rope() {
    }

    /** x [B, H, T, D] (D even; any strides, unit stride on D avoids a copy), positions I32 [B, T] or [T] (shared by the batch). */
    public static Tensor apply(Tensor x, Tensor positions, double base) {
        return apply(x, positions, base, 1.0);
    }

    /** As above with transformers' linear RoPE scaling (frequencies divided by {@code scaling}). */
    public static Tensor apply(Tensor x, Tensor positions, double base, double scaling) {
        String op = "rope";
        Tensor pos = checkedPositions(op, x, positions, scaling);
        Tensor xr = rows(x);
        return Autograd.op(op, () -> rotate(xr, pos, base, scaling, false, Tensor.empty(x.shape(), x.dtype(), x.device())),
                g -> new Tensor[] {rotate(rows(g), pos, base, scaling, true, emptyLaidOutAs(x)), null}, x, positions);
    }

    /**
     * The checks of a rotation of x [B, H, T, D] (floating, D even) by positions [T] or [B, T] (I32, x's device) with a
     * positive linear scaling; returns the positions as the kernels read them, [B, T] contiguous.
     */
    static Tensor checkedPositions(String op, Tensor x, Tensor positions, double scaling) {
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
        if (!(scaling > 0)) {
            throw new IllegalArgumentException(op + ": scaling must be positive, got " + scaling);
        }
        return shared ? positions.unsqueeze(0).expand(dev.jtune.engine.Shape.of(b, t)).contiguous() : positions.contiguous();
    }

    private static Tensor rotate(Tensor x, Tensor positions, double base, double scaling, boolean inverse, Tensor out) {
        if (out.numel() > 0) {
            RopeKernel.on(x).rotate(x, positions, base, scaling, inverse, out);
        }
        return out;
    }

    /** t itself when its rows (the last axis) are unit-stride, as the kernel reads them; else a contiguous copy. */
    static Tensor rows(Tensor t) {
        return t.stride(3) == 1 || t.dim(3) <= 1 ? t : t.contiguous();
    }

    /**
     * An output of x's shape in x's layout when x is tokens-major, the [B, H, T, D] view of a contiguous [B, T, H, D]
     * (the projection's; {@link AttentionKernel#tokensMajor}, the attention kernels' own test), so the gradient flows
     * back without a copy; contiguous otherwise. Either owns its storage (freed when the gradient is summed and closed).
     */
    static Tensor emptyLaidOutAs(Tensor x) {
        if (AttentionKernel.tokensMajor(x)) {
            return Tensor.emptyTransposed(x.shape(), 1, 2, x.dtype(), x.device());
        }
        return Tensor.empty(x.shape(), x.dtype(), x.device());
    }
}
