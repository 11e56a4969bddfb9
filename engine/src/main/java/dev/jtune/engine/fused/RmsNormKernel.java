package dev.jtune.engine.fused;

import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.NormKernels;
import dev.jtune.engine.meta.MetaBackend;

import java.util.stream.IntStream;

/**
 * RMSNorm's kernels ({@code ops.RmsNorm} is the op): the contract, the cpu reference, the cuda launcher
 * (kernels/norm.cu through {@link NormKernels}) and the meta rule, registered once as {@link #OP}.
 *
 * <p>Every tensor is contiguous; x [N, D]; weight [D] (any float dtype); rstd [N] is F32, or F64 next to F64 x.
 */
public interface RmsNormKernel {

    /**
     * {@code rstd[i] = 1 / sqrt(mean_j(x[i,j]^2) + eps)} in fp32 and
     * {@code out[i,j] = x[i,j] * rstd[i] * (offsetOne ? 1 + w[j] : w[j])}, rounded once to x's dtype; out [N, D] in
     * x's dtype (may be x).
     */
    void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor out, Tensor rstd);

    /**
     * gradX [N, D] in x's dtype; gradWeight [D] (rstd's dtype) = {@code sum_i gradOut[i,j] * x[i,j] * rstd[i]}
     * (written, summed in a fixed order), or null when not wanted.
     */
    void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradX, Tensor gradWeight);

    /**
     * The residual stream's add fused in: {@code sum = x + h} rounded to x's dtype (as the unfused add stores it), then
     * {@link #forward} of sum into out and rstd. x, h, sum and out [N, D] of x's dtype; sum may be x.
     */
    void forwardResidual(Tensor x, Tensor h, Tensor weight, double eps, boolean offsetOne, Tensor sum, Tensor out, Tensor rstd);

    /**
     * {@link #backward} of the norm of {@code sum} with {@code gradSum} (the gradient sum got from its other uses; null:
     * none) added to gradX in the accumulator, before its one rounding: gradX is then the gradient of both x and h.
     */
    void backwardResidual(Tensor sum, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradSum, Tensor gradX,
                          Tensor gradWeight);

    FusedOp<RmsNormKernel> OP = FusedOp.of("rmsNorm", new Cpu(), Cuda::new, new Meta());

    /** The kernels of {@code t}'s device. */
    static RmsNormKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The reference: each row in double in parallel, read whole before it is written, so out may be x. */
    final class Cpu implements RmsNormKernel {
        private Cpu() {
        }

        /**
         * {@code out = x * rstd * g} with {@code g = offsetOne ? 1 + w : w}. rstd is computed in double and stored in
         * rstd's dtype; out uses the double value, so it is rounded only once.
         */
        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor out, Tensor rstd) {
            int d = CpuLoops.lastDim("rmsNorm", x);
            long n = x.numel() / Math.max(d, 1);
            double[] g = gains(weight, offsetOne, d);
            Flat xs = Flat.of(x);
            Flat os = Flat.of(out);
            Flat rs = Flat.of(rstd);
            CpuLoops.rows(n, i -> {
                double[] row = xs.read(i * d, new double[d]);
                double ss = 0;
                for (double v : row) {
                    ss += v * v;
                }
                double r = 1 / Math.sqrt(ss / d + eps);
                rs.set(i, r);
                for (int j = 0; j < d; j++) {
                    row[j] = row[j] * r * g[j];
                }
                os.write(i * d, row);
            });
        }

        /**
         * With {@code y_j = x_j r g_j} and {@code r = (mean(x^2) + eps)^-1/2}:
         * {@code gradX_j = r (g_j gy_j - x_j r^2 sum_k(gy_k g_k x_k) / D)} and
         * {@code gradWeight_j = sum_i gy_ij x_ij r_i} (ascending i), r being the saved rstd. gradWeight is computed
         * first and every row of gradX from a whole-row read, so no input is read after it could have been written.
         */
        /** The sum rounded to its dtype by its store, then {@link #forward} of what was stored. */
        @Override
        public void forwardResidual(Tensor x, Tensor h, Tensor weight, double eps, boolean offsetOne, Tensor sum, Tensor out, Tensor rstd) {
            int d = CpuLoops.lastDim("rmsNorm", x);
            long n = x.numel() / Math.max(d, 1);
            Flat xs = Flat.of(x);
            Flat hs = Flat.of(h);
            Flat ss = Flat.of(sum);
            CpuLoops.rows(n, i -> {
                double[] row = xs.read(i * d, new double[d]);
                double[] hr = hs.read(i * d, new double[d]);
                for (int j = 0; j < d; j++) {
                    row[j] += hr[j];
                }
                ss.write(i * d, row);
            });
            forward(sum, weight, eps, offsetOne, out, rstd);
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradX,
                             Tensor gradWeight) {
            backwardResidual(x, weight, rstd, offsetOne, gradOut, null, gradX, gradWeight);
        }

        /**
         * {@link #backward}'s arithmetic; gradSum (when given) is added to each gradX element rounded to its dtype first,
         * as the unfused norm's store and the add would (the fused op's gradients are the unfused ones bit for bit).
         */
        @Override
        public void backwardResidual(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradSum, Tensor gradX,
                                     Tensor gradWeight) {
            int d = CpuLoops.lastDim("rmsNormBackward", x);
            long n = x.numel() / Math.max(d, 1);
            double[] g = gains(weight, offsetOne, d);
            Flat xs = Flat.of(x);
            Flat gys = Flat.of(gradOut);
            Flat rs = Flat.of(rstd);
            if (gradWeight != null) {
                Flat gw = Flat.of(gradWeight);
                double[] r = rs.read(0, new double[Math.toIntExact(n)]);
                IntStream.range(0, d).parallel().forEach(j -> {
                    double s = 0;
                    for (int i = 0; i < r.length; i++) {
                        long at = (long) i * d + j;
                        s += gys.get(at) * xs.get(at) * r[i];
                    }
                    gw.set(j, s);
                });
            }
            Flat gxs = Flat.of(gradX);
            Flat gss = gradSum == null ? null : Flat.of(gradSum);
            DType dtype = gradX.dtype();
            CpuLoops.rows(n, i -> {
                double[] xr = xs.read(i * d, new double[d]);
                double[] gy = gys.read(i * d, new double[d]);
                double[] gs = gss == null ? null : gss.read(i * d, new double[d]);
                double r = rs.get(i);
                double dot = 0;
                for (int j = 0; j < d; j++) {
                    dot += gy[j] * g[j] * xr[j];
                }
                double c = r * r * dot / d;
                for (int j = 0; j < d; j++) {
                    gy[j] = r * (g[j] * gy[j] - xr[j] * c);
                    if (gs != null) {
                        gy[j] = Numerics.roundTo(dtype, gy[j]) + gs[j]; // rounded as the unfused norm and add round
                    }
                }
                gxs.write(i * d, gy);
            });
        }

        /** The per-column factor {@code offsetOne ? 1 + w : w}, in double. */
        private static double[] gains(Tensor weight, boolean offsetOne, int d) {
            double[] g = Flat.of(weight).read(0, new double[d]);
            if (offsetOne) {
                for (int j = 0; j < d; j++) {
                    g[j] += 1;
                }
            }
            return g;
        }
    }

    /** kernels/norm.cu; the weight gradient goes through partial sums that a second kernel adds in a fixed order. */
    final class Cuda implements RmsNormKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        private NormKernels kernels() {
            return normKernels(gpu);
        }

        /** norm.cu's launch class on {@code gpu}, built once (RMSNorm's and the fused norm and rotation's kernels). */
        static NormKernels normKernels(CudaBackend gpu) {
            return gpu.family(NormKernels.class, b -> new NormKernels(b.compiler(), b.stream(), b.context(), b.allocator()));
        }

        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor out, Tensor rstd) {
            kernels().rmsNorm(x, weight, eps, offsetOne, out, rstd);
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradX,
                             Tensor gradWeight) {
            kernels().rmsNormBackward(x, weight, rstd, offsetOne, gradOut, gradX, gradWeight);
        }

        @Override
        public void forwardResidual(Tensor x, Tensor h, Tensor weight, double eps, boolean offsetOne, Tensor sum, Tensor out, Tensor rstd) {
            kernels().rmsNorm(x, h, sum, weight, eps, offsetOne, out, rstd);
        }

        @Override
        public void backwardResidual(Tensor sum, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradSum, Tensor gradX,
                                     Tensor gradWeight) {
            kernels().rmsNormBackward(sum, weight, rstd, offsetOne, gradOut, gradSum, gradX, gradWeight);
        }
    }

    /** Outputs are the op's; the backward's weight-gradient partial sums are the workspace. */
    final class Meta implements RmsNormKernel {
        private Meta() {
        }

        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor out, Tensor rstd) {
            // no workspace
        }

        @Override
        public void forwardResidual(Tensor x, Tensor h, Tensor weight, double eps, boolean offsetOne, Tensor sum, Tensor out, Tensor rstd) {
            // no workspace
        }

        @Override
        public void backwardResidual(Tensor sum, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradSum, Tensor gradX,
                                     Tensor gradWeight) {
            backward(sum, weight, rstd, offsetOne, gradOut, gradX, gradWeight);
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradX,
                             Tensor gradWeight) {
            if (gradWeight == null) {
                return;
            }
            long d = x.rank() == 0 ? 1 : x.dim(-1);
            long n = d == 0 ? 0 : x.numel() / d;
            MetaBackend meta = MetaBackend.instance();
            meta.workspace(NormKernels.weightGradientWorkspaceBytes(n, d, x.dtype(), meta.multiprocessors())).close();
        }
    }
}
