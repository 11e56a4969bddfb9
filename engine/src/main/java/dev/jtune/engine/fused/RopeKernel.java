package dev.jtune.engine.fused;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.RopeKernels;

/**
 * Rotary embedding's kernel ({@code ops.Rope} is the op): cpu reference, cuda launcher (kernels/rope.cu through
 * {@link RopeKernels}) and meta rule (no workspace), registered once as {@link #OP}.
 */
public interface RopeKernel {

    /**
     * HF's rotate-half convention. x and out [B, H, T, D] (D even), each with unit stride on D and any strides on B, H
     * and T (the attention path passes q and k as the transposed view of the projection's [B, T, H, D]), positions
     * I32 [B, T] contiguous. With
     * {@code invFreq[d] = (float) (1 / (scaling * base^(2d/D)))} and {@code angle = (float) pos * invFreq[d]} (both fp32,
     * as HF computes them), for d < D/2: {@code out[d] = x[d] cos - x[d + D/2] sin},
     * {@code out[d + D/2] = x[d + D/2] cos + x[d] sin}; {@code inverse} rotates by -angle (the backward).
     * {@code scaling} is transformers' linear RoPE scaling factor (1: none; 8 on Gemma 3 4B+'s global layers). out may
     * be x (the same view).
     */
    void rotate(Tensor x, Tensor positions, double base, double scaling, boolean inverse, Tensor out);

    FusedOp<RopeKernel> OP = FusedOp.of("rope", new Cpu(), Cuda::new, new Meta());

    static RopeKernel on(Tensor t) {
        return OP.on(t);
    }

    /**
     * The reference: invFreq and the angle are fp32 as the contract fixes (fp32 multiply); cos and sin of that float
     * angle, and the rotation, are in double with one rounding on store. Rows (b, h, t) run in parallel, each at its
     * own strided start in x and in out, and are read whole before they are written, so out may be x.
     */
    final class Cpu implements RopeKernel {
        private Cpu() {
        }

        @Override
        public void rotate(Tensor x, Tensor positions, double base, double scaling, boolean inverse, Tensor out) {
            long heads = x.dim(1);
            long t = x.dim(2);
            int d = CpuLoops.lastDim("rope", x);
            int half = d / 2;
            float[] invFreq = inverseFrequencies(base, scaling, d);
            Flat xs = Flat.of(x);
            Flat ps = Flat.of(positions);
            Flat os = Flat.of(out);
            CpuLoops.rows(x.numel() / Math.max(d, 1), row -> {
                long b = row / (heads * t);
                long h = row / t % heads;
                long ti = row % t;
                float pos = (float) ps.getLong(b * t + ti);
                double[] v = xs.read(b * x.stride(0) + h * x.stride(1) + ti * x.stride(2), new double[d]);
                os.write(b * out.stride(0) + h * out.stride(1) + ti * out.stride(2), rotateRow(v, pos, invFreq, inverse));
            });
        }

        /** One row rotated: the fp32 angle pos * invFreq[k], its cos and sin in double; inverse by -angle. */
        private static double[] rotateRow(double[] v, float pos, float[] invFreq, boolean inverse) {
            int half = v.length / 2;
            double[] r = new double[v.length];
            for (int k = 0; k < half; k++) {
                float angle = pos * invFreq[k];
                double c = Math.cos(angle);
                double s = inverse ? -Math.sin(angle) : Math.sin(angle);
                r[k] = v[k] * c - v[k + half] * s;
                r[k + half] = v[k + half] * c + v[k] * s;
            }
            return r;
        }

        /** {@code (float) (1 / (scaling * base^(2k/D)))} for k < D/2, each rounded once from double. */
        static float[] inverseFrequencies(double base, double scaling, int d) {
            float[] f = new float[d / 2];
            for (int k = 0; k < f.length; k++) {
                f[k] = (float) (1 / (scaling * Math.pow(base, 2.0 * k / d)));
            }
            return f;
        }
    }

    /** kernels/rope.cu: the frequencies in shared memory, one thread per (row, pair). */
    final class Cuda implements RopeKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        @Override
        public void rotate(Tensor x, Tensor positions, double base, double scaling, boolean inverse, Tensor out) {
            gpu.family(RopeKernels.class, b -> new RopeKernels(b.compiler(), b.stream(), b.context()))
                    .rope(x, positions, base, scaling, inverse, out);
        }
    }

    /** No workspace: the op allocates the output. */
    final class Meta implements RopeKernel {
        private Meta() {
        }

        @Override
        public void rotate(Tensor x, Tensor positions, double base, double scaling, boolean inverse, Tensor out) {
        }
    }
}
