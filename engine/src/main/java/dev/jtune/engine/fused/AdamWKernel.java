package dev.jtune.engine.fused;

import dev.jtune.engine.Numerics;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.OptimKernels;

/**
 * The AdamW step's kernel ({@code optim.AdamW} is the optimizer): cpu reference, cuda launcher (kernels/optim.cu
 * through {@link OptimKernels}) and meta rule (no workspace), registered once as {@link #OP}.
 */
public interface AdamWKernel {

    /**
     * One step of torch.optim.AdamW on contiguous tensors of one shape: param (float dtype, updated in place), grad
     * (param's dtype or F32), m and v F32, or F64 next to an F64 param (updated in place). The gradient is first
     * multiplied by {@code gradScale[0]} when gradScale ([1] on the device) is not null.
     */
    void step(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale);

    FusedOp<AdamWKernel> OP = FusedOp.of("adamw", new Cpu(), Cuda::new, new Meta());

    static AdamWKernel on(Tensor t) {
        return OP.on(t);
    }

    /**
     * torch.optim.AdamW (single-tensor path, amsgrad off), element by element in double:
     * {@code p *= 1 - lr wd}; {@code m = b1 m + (1 - b1) g}; {@code v = b2 v + (1 - b2) g^2};
     * {@code p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)}, with {@code g = grad * gradScale[0]} when given.
     * The parameter update uses m and v as stored (rounded to their dtype), as torch and a GPU kernel do, so the
     * saved state fully determines the step.
     */
    final class Cpu implements AdamWKernel {
        private Cpu() {
        }

        @Override
        public void step(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
            double factor = gradScale == null ? 1.0 : Flat.of(gradScale).get(0);
            boolean scaled = gradScale != null;
            double decay = 1 - step.lr() * step.weightDecay();
            double b1 = step.beta1();
            double b2 = step.beta2();
            double stepSize = step.lr() / step.biasCorrection1();
            double bc2Sqrt = Math.sqrt(step.biasCorrection2());
            double eps = step.eps();
            Flat ps = Flat.of(param);
            Flat gs = Flat.of(grad);
            Flat ms = Flat.of(m);
            Flat vs = Flat.of(v);
            CpuLoops.blocks(param.numel(), (start, end) -> {
                for (long i = start; i < end; i++) {
                    double g = scaled ? gs.get(i) * factor : gs.get(i);
                    double mi = Numerics.roundTo(ms.dtype(), b1 * ms.get(i) + (1 - b1) * g);
                    double vi = Numerics.roundTo(vs.dtype(), b2 * vs.get(i) + (1 - b2) * g * g);
                    double p = ps.get(i) * decay;
                    p -= stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
                    ms.set(i, mi);
                    vs.set(i, vi);
                    ps.set(i, p);
                }
            });
        }
    }

    /** kernels/optim.cu's adamw kernels. */
    final class Cuda implements AdamWKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        @Override
        public void step(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
            // optim.cu's family, which clipping's kernels share
            gpu.family(OptimKernels.class, b -> new OptimKernels(b.compiler(), b.stream(), b.context(), b.allocator()))
                    .adamw(param, grad, m, v, step, gradScale);
        }
    }

    /** No workspace: the optimizer allocates its state. */
    final class Meta implements AdamWKernel {
        private Meta() {
        }

        @Override
        public void step(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
        }
    }
}
