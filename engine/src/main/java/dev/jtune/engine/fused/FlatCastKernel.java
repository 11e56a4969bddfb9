package dev.jtune.engine.fused;

import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.OptimKernels;
import dev.jtune.engine.optim.FlatLayout;

/**
 * A flat group's parameters converted into one flat buffer of another dtype, in one launch: the compute-dtype copies of
 * trainable weights ({@code nn.ComputeCopies}) that would otherwise take one cast launch each. cpu reference, cuda
 * launcher (kernels/optim.cu's {@code cast_flat} through {@link OptimKernels}) and meta rule (no workspace), registered
 * once as {@link #OP}.
 */
public interface FlatCastKernel {

    /**
     * {@code out} (1-D, {@code params.layout().numel()} elements of a float dtype) gets parameter e's elements at entry
     * e's offset, each converted as a copy into out's dtype converts it (rounded to nearest even); the alignment gaps are
     * left as they are.
     */
    void cast(ParameterTable params, Tensor out);

    FusedOp<FlatCastKernel> OP = FusedOp.of("castFlat", new Cpu(), Cuda::new, new Meta());

    static FlatCastKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The shape rule every backend checks: out holds the layout. */
    private static void check(ParameterTable params, Tensor out) {
        if (out.rank() != 1 || out.dim(0) != params.layout().numel() || !out.isContiguous() || !out.dtype().isFloating()) {
            throw new ShapeException("castFlat: out " + out.describe() + " does not hold a flat layout of " + params.layout().numel()
                    + " elements of a float dtype");
        }
    }

    /** The reference: each parameter read in double and stored into out's dtype. */
    final class Cpu implements FlatCastKernel {
        private Cpu() {
        }

        @Override
        public void cast(ParameterTable params, Tensor out) {
            check(params, out);
            Flat os = Flat.of(out);
            for (int p = 0; p < params.parameters().size(); p++) {
                Flat ps = Flat.of(params.parameters().get(p));
                FlatLayout.Entry entry = params.layout().entries().get(p);
                long offset = entry.offset();
                CpuLoops.blocks(entry.numel(), (start, end) -> {
                    for (long k = start; k < end; k++) {
                        os.set(offset + k, ps.get(k));
                    }
                });
            }
        }
    }

    /** kernels/optim.cu's cast_flat. */
    final class Cuda implements FlatCastKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        @Override
        public void cast(ParameterTable params, Tensor out) {
            check(params, out);
            gpu.family(OptimKernels.class, b -> new OptimKernels(b.compiler(), b.stream(), b.context(), b.allocator())).castFlat(params, out);
        }
    }

    /** No workspace: the caller allocates out. */
    final class Meta implements FlatCastKernel {
        private Meta() {
        }

        @Override
        public void cast(ParameterTable params, Tensor out) {
            check(params, out);
        }
    }
}
