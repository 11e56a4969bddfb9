package dev.jtune.engine.fused;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.NormKernels;
import dev.jtune.engine.meta.MetaBackend;

/**
 * RMSNorm then RoPE in one pass, the q/k path ({@code ops.RmsNormRope} is the op): the contract, the cpu reference,
 * the cuda launcher (kernels/norm.cu through {@link NormKernels}) and the meta rule, registered once as {@link #OP}.
 *
 * <p>x [B, H, T, D] (D even) with unit stride on D and any strides on B, H and T (the projection's [B, T, H, D] read
 * in place); out [B, H, T, D] likewise; weight [D]; positions I32 [B, T] contiguous; rstd [B * T * H] (F32, F64 next to
 * F64 x) in (b, t, h) order. The values are the unfused ops': {@link RmsNormKernel#forward}'s, rounded to x's dtype as
 * its output is stored, then {@link RopeKernel#rotate}'s of that; bit for bit on the cpu, and on the GPU where the
 * kernel's multiply-adds are rope.cu's (norm.cu's rope_row says how it keeps them so).
 */
public interface RmsNormRopeKernel {

    void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                 Tensor rstd);

    /**
     * gy = the inverse rotation of gradOut rounded to x's dtype (the unfused rope's stored gradient), then
     * {@link RmsNormKernel#backward} of gy: gradX (strided as given, like x) and gradWeight [D] (rstd's dtype, summed
     * in a fixed order; null when not wanted).
     */
    void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling, Tensor gradOut,
                  Tensor gradX, Tensor gradWeight);

    FusedOp<RmsNormRopeKernel> OP = FusedOp.of("rmsNormRope", new Cpu(), Cuda::new, new Meta());

    static RmsNormRopeKernel on(Tensor t) {
        return OP.on(t);
    }

    /**
     * The reference: the two ops' cpu references composed, so its values are theirs by construction. x's rows are read
     * in (b, t, h) order as one contiguous [B, T, H, D] (rstd's order), normed into that layout in x's dtype (the
     * unfused norm's rounding), and rotated from its [B, H, T, D] view; backward rotates gradOut back into x's dtype
     * (the unfused rope's stored gradient), runs the norm's backward over the rows and writes gradX in its own layout.
     */
    final class Cpu implements RmsNormRopeKernel {
        private Cpu() {
        }

        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                            Tensor rstd) {
            try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("rmsNormRope reference")) {
                Tensor rows = rowsOf(x);
                Tensor normed = Tensor.empty(rows.shape(), x.dtype(), x.device());
                RmsNormKernel.on(x).forward(rows, weight, eps, offsetOne, normed, rstd);
                RopeKernel.on(x).rotate(asHeads(normed, x), positions, base, scaling, false, out);
            }
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling,
                             Tensor gradOut, Tensor gradX, Tensor gradWeight) {
            try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("rmsNormRope reference")) {
                Tensor rows = rowsOf(x);
                Tensor gy = Tensor.empty(rows.shape(), x.dtype(), x.device());
                RopeKernel.on(x).rotate(gradOut, positions, base, scaling, true, asHeads(gy, x));
                Tensor gx = Tensor.empty(rows.shape(), x.dtype(), x.device());
                RmsNormKernel.on(x).backward(rows, weight, rstd, offsetOne, gy, gx, gradWeight);
                Ops.copyInto(asHeads(gx, x), gradX);
            }
        }

        /** x's rows in (b, t, h) order: a contiguous [B * T * H, D]. */
        private static Tensor rowsOf(Tensor x) {
            return x.transpose(1, 2).contiguous().reshape(-1, x.dim(3));
        }

        /** Rows [B * T * H, D] seen as x's [B, H, T, D]. */
        private static Tensor asHeads(Tensor rows, Tensor x) {
            return rows.reshape(x.dim(0), x.dim(2), x.dim(1), x.dim(3)).transpose(1, 2);
        }
    }

    /** kernels/norm.cu's rms_norm_rope: a warp a (b, t) row, every head of it; the weight gradient as RMSNorm's. */
    final class Cuda implements RmsNormRopeKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        private NormKernels kernels() {
            return RmsNormKernel.Cuda.normKernels(gpu);
        }

        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                            Tensor rstd) {
            kernels().rmsNormRope(x, weight, eps, offsetOne, positions, base, scaling, out, rstd);
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling,
                             Tensor gradOut, Tensor gradX, Tensor gradWeight) {
            kernels().rmsNormRopeBackward(x, weight, rstd, offsetOne, positions, base, scaling, gradOut, gradX, gradWeight);
        }
    }

    /** Outputs are the op's; the backward's weight-gradient lines are the workspace. */
    final class Meta implements RmsNormRopeKernel {
        private Meta() {
        }

        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                            Tensor rstd) {
            // no workspace
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling,
                             Tensor gradOut, Tensor gradX, Tensor gradWeight) {
            if (gradWeight == null) {
                return;
            }
            MetaBackend meta = MetaBackend.instance();
            meta.workspace(NormKernels.normRopeWorkspaceBytes(x.dim(0) * x.dim(2), x.dim(3), x.dtype(), meta.multiprocessors())).close();
        }
    }
}
