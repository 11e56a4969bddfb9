package dev.jtune.engine.fused;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.SoftmaxKernels;

/**
 * Softmax's and log-softmax's kernels over the last axis ({@code ops.Softmax} is the op): cpu reference, cuda
 * launcher (kernels/softmax.cu through {@link SoftmaxKernels}) and meta rule (no workspace), registered once as
 * {@link #OP}. x, out, gradients [N, C], contiguous, of one dtype; statistics in fp32 (fp64 for F64).
 */
public interface SoftmaxKernel {

    /** Softmax (or log-softmax when {@code log}) of each row; out may be x. */
    void forward(Tensor x, boolean log, Tensor out);

    /**
     * Backward from the output y: softmax {@code gx = y * (gy - sum_c gy y)}, log-softmax
     * {@code gx = gy - exp(y) * sum_c gy}. gradX may be gradOut.
     */
    void backward(Tensor out, Tensor gradOut, boolean log, Tensor gradX);

    FusedOp<SoftmaxKernel> OP = FusedOp.of("softmax", new Cpu(), Cuda::new, new Meta());

    static SoftmaxKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The reference: rows in parallel, each read whole first. */
    final class Cpu implements SoftmaxKernel {
        private Cpu() {
        }

        /** {@code exp(x - m) / s} or {@code x - m - log s}, with m the row's max and {@code s = sum exp(x - m)}. */
        @Override
        public void forward(Tensor x, boolean log, Tensor out) {
            int c = CpuLoops.lastDim("softmax", x);
            Flat xs = Flat.of(x);
            Flat os = Flat.of(out);
            CpuLoops.rows(x.numel() / Math.max(c, 1), i -> {
                double[] row = xs.read(i * c, new double[c]);
                double max = Double.NEGATIVE_INFINITY;
                for (double v : row) {
                    max = Math.max(max, v);
                }
                double sum = 0;
                for (double v : row) {
                    sum += Math.exp(v - max);
                }
                double logSum = Math.log(sum);
                for (int j = 0; j < c; j++) {
                    row[j] = log ? row[j] - max - logSum : Math.exp(row[j] - max) / sum;
                }
                os.write(i * c, row);
            });
        }

        @Override
        public void backward(Tensor out, Tensor gradOut, boolean log, Tensor gradX) {
            int c = CpuLoops.lastDim("softmaxBackward", out);
            Flat ys = Flat.of(out);
            Flat gys = Flat.of(gradOut);
            Flat gxs = Flat.of(gradX);
            CpuLoops.rows(out.numel() / Math.max(c, 1), i -> {
                double[] y = ys.read(i * c, new double[c]);
                double[] gy = gys.read(i * c, new double[c]);
                double s = 0;
                for (int j = 0; j < c; j++) {
                    s += log ? gy[j] : gy[j] * y[j];
                }
                for (int j = 0; j < c; j++) {
                    gy[j] = log ? gy[j] - Math.exp(y[j]) * s : y[j] * (gy[j] - s);
                }
                gxs.write(i * c, gy);
            });
        }
    }

    /** kernels/softmax.cu: one warp per row up to 1,024 elements, else one block. */
    final class Cuda implements SoftmaxKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        /** softmax.cu's family, which attention's row kernels share. */
        private SoftmaxKernels kernels() {
            return gpu.family(SoftmaxKernels.class, b -> new SoftmaxKernels(b.compiler(), b.stream(), b.context()));
        }

        @Override
        public void forward(Tensor x, boolean log, Tensor out) {
            kernels().softmax(x, log, out);
        }

        @Override
        public void backward(Tensor out, Tensor gradOut, boolean log, Tensor gradX) {
            kernels().softmaxBackward(out, gradOut, log, gradX);
        }
    }

    /** No workspace: the op allocates every output. */
    final class Meta implements SoftmaxKernel {
        private Meta() {
        }

        @Override
        public void forward(Tensor x, boolean log, Tensor out) {
        }

        @Override
        public void backward(Tensor out, Tensor gradOut, boolean log, Tensor gradX) {
        }
    }
}
