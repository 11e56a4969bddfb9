package dev.jtune.engine.fused;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.OptimKernels;
import dev.jtune.engine.meta.MetaBackend;

/**
 * Global gradient-norm clipping's kernels ({@code optim.GradClip} is the op): the deterministic sum of squares and
 * torch's clip factor; cpu reference, cuda launcher (kernels/optim.cu through {@link OptimKernels}) and meta rule,
 * registered once as {@link #OP}. Statistics are [1] tensors, F32 (F64 next to F64 gradients), on the device.
 */
public interface GradClipKernel {

    /** {@code out[0] += sum of x^2} over all elements of contiguous x (fp32 accumulation; fp64 for F64). */
    void sumOfSquares(Tensor x, Tensor out);

    /** {@code coef[0] = min(1, maxNorm / (sqrt(sumOfSquares[0]) + 1e-6))}, torch's clip_grad_norm_ factor. */
    void clipCoefficient(Tensor sumOfSquares, double maxNorm, Tensor coef);

    FusedOp<GradClipKernel> OP = FusedOp.of("gradClip", new Cpu(), Cuda::new, new Meta());

    static GradClipKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The reference, in double. */
    final class Cpu implements GradClipKernel {
        private Cpu() {
        }

        /**
         * Block sums in double (in parallel), added in block order, so the result does not depend on thread
         * scheduling; then one rounding when added to out.
         */
        @Override
        public void sumOfSquares(Tensor x, Tensor out) {
            long n = x.numel();
            Flat xs = Flat.of(x);
            double[] partial = new double[Math.toIntExact(Math.ceilDiv(n, CpuLoops.BLOCK))];
            CpuLoops.blocks(n, (start, end) -> {
                double s = 0;
                for (long i = start; i < end; i++) {
                    double e = xs.get(i);
                    s += e * e;
                }
                partial[(int) (start / CpuLoops.BLOCK)] = s;
            });
            double total = 0;
            for (double s : partial) {
                total += s;
            }
            Flat o = Flat.of(out);
            o.set(0, o.get(0) + total);
        }

        /** NaN stays NaN (torch's clamp propagates it). */
        @Override
        public void clipCoefficient(Tensor sumOfSquares, double maxNorm, Tensor coef) {
            double ss = Flat.of(sumOfSquares).get(0);
            Flat.of(coef).set(0, Math.min(1.0, maxNorm / (Math.sqrt(ss) + 1e-6)));
        }
    }

    /** kernels/optim.cu: a fixed grid of block partials (fixed for a given size and GPU), added in order. */
    final class Cuda implements GradClipKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        /** optim.cu's family, which the AdamW step shares. */
        private static OptimKernels optim(CudaBackend gpu) {
            return gpu.family(OptimKernels.class, b -> new OptimKernels(b.compiler(), b.stream(), b.context(), b.allocator()));
        }

        @Override
        public void sumOfSquares(Tensor x, Tensor out) {
            optim(gpu).sumOfSquares(x, out);
        }

        @Override
        public void clipCoefficient(Tensor sumOfSquares, double maxNorm, Tensor coef) {
            optim(gpu).clipCoefficient(sumOfSquares, maxNorm, coef);
        }
    }

    /** The sum of squares' block partials are the workspace. */
    final class Meta implements GradClipKernel {
        private Meta() {
        }

        @Override
        public void sumOfSquares(Tensor x, Tensor out) {
            MetaBackend meta = MetaBackend.instance();
            meta.workspace(OptimKernels.sumOfSquaresWorkspaceBytes(x, meta.multiprocessors())).close();
        }

        @Override
        public void clipCoefficient(Tensor sumOfSquares, double maxNorm, Tensor coef) {
        }
    }
}
