package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Node;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.fused.RmsNormRopeKernel;
import dev.jtune.engine.ops.RmsNorm.Scale;

/**
 * RMSNorm over the head dimension, then RoPE: Gemma's q/k path ({@code q_norm} or {@code k_norm}, then the rotation)
 * as one op, one pass over the rows each way. Its values and gradients are those of {@link RmsNorm#apply} followed by
 * {@link Rope#apply} (the normed tensor rounded as the norm stores it, the rotated-back gradient as the rope's backward
 * stores it; bit for bit on the cpu, see {@code RmsNormRopeKernel} for the GPU); what goes is that intermediate
 * tensor's write and read and a launch. Like {@link Rope},
 * x may be the [B, H, T, D] view of the projection's [B, T, H, D]: the output is a contiguous [B, H, T, D] and x's
 * gradient comes back in x's layout, with no transposing copy either way.
 */
public final class RmsNormRope {
    /**
     * {@link #apply}'s choice: the fused op (the default), or the two ops with {@code -Djtune.fusedNormRope=false}. On
     * an H100 its fp32 outputs and gradients equal the two ops' to the bit (since its rotation spells out rope.cu's
     * multiply-adds; the first run's compiler-chosen ones moved the fp32 LoRA golden to 1.46e-4, now 3.27e-5 as the two
     * ops); the 8K trainer's rate is the same either way, its peak 19 MiB lower (the normed q and k are not stored).
     */
    private static final boolean FUSED = Boolean.parseBoolean(System.getProperty("jtune.fusedNormRope", "true"));

    /**
     * Head dimensions above this take the unfused pair: the fused kernel keeps a warp's rows in shared memory
     * ({@code NormKernels.maxNormRopeHeadDim}); Gemma's are 256.
     */
    static final long FUSED_HEAD_DIM_LIMIT = 1024;

    private RmsNormRope() {
    }

    /**
     * x [B, H, T, D] (D even; unit stride on D avoids a copy), weight [D], positions I32 [B, T] or [T]; base, scaling
     * as {@link Rope#apply(Tensor, Tensor, double, double)}. {@link #fused} or {@link #twoOps}, as {@link #FUSED} says.
     */
    public static Tensor apply(Tensor x, Tensor weight, double eps, Scale scale, Tensor positions, double base, double scaling) {
        return FUSED ? fused(x, weight, eps, scale, positions, base, scaling) : twoOps(x, weight, eps, scale, positions, base, scaling);
    }

    /**
     * The two ops: {@link RmsNorm#apply} over x's rows where they lie (when x is the [B, H, T, D] view of a contiguous
     * [B, T, H, D], that tensor: normalising the view itself would copy it), then {@link Rope#apply}.
     */
    public static Tensor twoOps(Tensor x, Tensor weight, double eps, Scale scale, Tensor positions, double base, double scaling) {
        Tensor bthd = x.transpose(1, 2);
        Tensor normed = !x.isContiguous() && bthd.isContiguous() ? RmsNorm.apply(bthd, weight, eps, scale).transpose(1, 2)
                : RmsNorm.apply(x, weight, eps, scale);
        return Rope.apply(normed, positions, base, scaling);
    }

    /** The fused op (as {@link #apply}'s arguments); a head dimension over {@link #FUSED_HEAD_DIM_LIMIT} takes {@link #twoOps}. */
    public static Tensor fused(Tensor x, Tensor weight, double eps, Scale scale, Tensor positions, double base, double scaling) {
        String op = "rmsNormRope";
        java.util.Objects.requireNonNull(scale, "scale");
        Tensor pos = Rope.checkedPositions(op, x, positions, scaling);
        Checks.floating(op, weight, "weight");
        Checks.rank(op, weight, 1, "weight");
        Checks.sameDevice(op, x, weight);
        if (x.dim(3) != weight.dim(0)) {
            throw new ShapeException(op + ": x " + x.shape() + " and weight " + weight.shape() + " differ in the head dimension");
        }
        if (x.dim(3) > FUSED_HEAD_DIM_LIMIT) {
            return twoOps(x, weight, eps, scale, positions, base, scaling);
        }
        boolean offsetOne = scale == Scale.ONE_PLUS_WEIGHT;
        Tensor xr = Rope.rows(x);
        Tensor w = weight.contiguous();
        Tensor out;
        Tensor rstd;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            out = Tensor.empty(x.shape(), x.dtype(), x.device());
            rstd = Tensor.empty(Shape.of(x.dim(0) * x.dim(2) * x.dim(1)), Checks.statType(x), x.device());
            if (out.numel() > 0) {
                RmsNormRopeKernel.on(x).forward(xr, w, eps, offsetOne, pos, base, scaling, out, rstd);
            }
        }
        Node node = Autograd.attach(op, out, g -> {
            Tensor gx = Rope.emptyLaidOutAs(x);
            Tensor gw = weight.requiresGrad() ? Tensor.empty(weight.shape(), Checks.statType(x), x.device()) : null;
            if (gx.numel() > 0) {
                RmsNormRopeKernel.on(x).backward(xr, w, rstd, offsetOne, pos, base, scaling, Rope.rows(g), gx, gw);
            } else if (gw != null) {
                Backends.of(x).fill(gw, 0.0);
            }
            return new Tensor[] {gx, gw == null ? null : gw.cast(weight.dtype()), null};
        }, x, weight, positions);
        if (node != null) {
            node.own(rstd);
        } else {
            rstd.close();
        }
        return out;
    }
}
