package dev.jtune.engine.fused;

import dev.jtune.engine.Numerics;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.OptimKernels;
import dev.jtune.engine.optim.FlatLayout;

/**
 * The AdamW step's kernels ({@code optim.AdamW} is the optimizer), per tensor and multi-tensor over a group's flat
 * buffers: cpu reference, cuda launcher (kernels/optim.cu through {@link OptimKernels}) and meta rule (no workspace),
 * registered once as {@link #OP}.
 */
public interface AdamWKernel {

    /**
     * One step of torch.optim.AdamW on contiguous tensors of one shape: param (float dtype, updated in place), grad
     * (param's dtype or F32), m and v F32, or F64 next to an F64 param (updated in place). The gradient is first
     * multiplied by {@code gradScale[0]} when gradScale ([1] on the device) is not null.
     */
    void step(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale);

    /**
     * The same step for every parameter of one flat group in one launch. The flat buffers hold parameter e's element k
     * at {@code params.layout()}'s entry e offset + k (1-D, {@code layout.numel()} elements; the alignment gaps are
     * zero and stay zero): grad (the parameters' dtype or F32), m and v (F32, F64 next to F64 parameters) and master
     * (F32, next to 16-bit parameters; null: each parameter is itself the weight stepped, through its address). With a
     * master copy the master is stepped and the parameter set to it rounded to the parameter's dtype, so every element
     * gets exactly what {@link #step} on the master followed by a copy into the parameter gives it.
     */
    void flatStep(ParameterTable params, Tensor grad, Tensor master, Tensor m, Tensor v, AdamWStep step, Tensor gradScale);

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
            Element e = new Element(step, gradScale);
            Flat ps = Flat.of(param);
            Flat gs = Flat.of(grad);
            Flat ms = Flat.of(m);
            Flat vs = Flat.of(v);
            CpuLoops.blocks(param.numel(), (start, end) -> {
                for (long i = start; i < end; i++) {
                    ps.set(i, e.update(gs, ms, vs, i, ps.get(i)));
                }
            });
        }

        /**
         * Entry by entry, element by element, {@link #step}'s arithmetic; with a master copy the new weight is rounded to
         * F32 in the master first, then from there to the parameter's dtype, as the copy after a per-tensor step does.
         */
        @Override
        public void flatStep(ParameterTable params, Tensor grad, Tensor master, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
            Element e = new Element(step, gradScale);
            Flat gs = Flat.of(grad);
            Flat ms = Flat.of(m);
            Flat vs = Flat.of(v);
            Flat masters = master == null ? null : Flat.of(master);
            for (int p = 0; p < params.parameters().size(); p++) {
                Flat ps = Flat.of(params.parameters().get(p));
                FlatLayout.Entry entry = params.layout().entries().get(p);
                long offset = entry.offset();
                CpuLoops.blocks(entry.numel(), (start, end) -> {
                    for (long k = start; k < end; k++) {
                        long i = offset + k;
                        if (masters == null) {
                            ps.set(k, e.update(gs, ms, vs, i, ps.get(k)));
                        } else {
                            masters.set(i, e.update(gs, ms, vs, i, masters.get(i)));
                            ps.set(k, masters.get(i));
                        }
                    }
                });
            }
        }

        /** One element's update in double, from the step's scalars. */
        private record Element(double factor, boolean scaled, double decay, double b1, double b2, double stepSize, double bc2Sqrt,
                               double eps) {
            Element(AdamWStep step, Tensor gradScale) {
                this(gradScale == null ? 1.0 : Flat.of(gradScale).get(0), gradScale != null, 1 - step.lr() * step.weightDecay(),
                        step.beta1(), step.beta2(), step.lr() / step.biasCorrection1(), Math.sqrt(step.biasCorrection2()), step.eps());
            }

            /** Updates m[i] and v[i] (rounded to their dtype) from grad[i]; returns the new weight from {@code weight}. */
            double update(Flat gs, Flat ms, Flat vs, long i, double weight) {
                double g = scaled ? gs.get(i) * factor : gs.get(i);
                double mi = Numerics.roundTo(ms.dtype(), b1 * ms.get(i) + (1 - b1) * g);
                double vi = Numerics.roundTo(vs.dtype(), b2 * vs.get(i) + (1 - b2) * g * g);
                double p = weight * decay;
                p -= stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
                ms.set(i, mi);
                vs.set(i, vi);
                return p;
            }
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

        @Override
        public void flatStep(ParameterTable params, Tensor grad, Tensor master, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
            gpu.family(OptimKernels.class, b -> new OptimKernels(b.compiler(), b.stream(), b.context(), b.allocator()))
                    .adamwFlat(params, grad, master, m, v, step, gradScale);
        }
    }

    /** No workspace: the optimizer allocates its state (and the parameter table). */
    final class Meta implements AdamWKernel {
        private Meta() {
        }

        @Override
        public void step(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
        }

        @Override
        public void flatStep(ParameterTable params, Tensor grad, Tensor master, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
        }
    }
}
