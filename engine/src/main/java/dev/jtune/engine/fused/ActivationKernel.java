package dev.jtune.engine.fused;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.ActivationKernels;
import dev.jtune.engine.cuda.CudaBackend;

/**
 * GELU's and GeGLU's kernels ({@code ops.Activations} is the op): cpu reference, cuda launcher (kernels/activation.cu
 * through {@link ActivationKernels}) and meta rule (no workspace), registered once as {@link #OP}. All operands are of
 * one shape and dtype, contiguous; GeGLU's gate and up, and their gradients, may instead be 2-D row-strided alike
 * ({@code ops.Checks.rowsAsStored}, {@link #rowStride}): the two halves of one fused gate/up product's [rows, 2 cols] output and of its gradient.
 */
public interface ActivationKernel {

    /** {@code sqrt(2/pi)}, GELU's tanh-approximation scale (kernels/activation.cu receives it as GELU_BETA). */
    double GELU_BETA = Math.sqrt(2 / Math.PI);
    /** The cubic coefficient (GELU_KAPPA in kernels/activation.cu). */
    double GELU_KAPPA = 0.044715;

    /** GELU, tanh approximation: {@code 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))}; out may be x. */
    void gelu(Tensor x, Tensor out);

    /** {@code gradX = gradOut * gelu'(x)}; gradX may be gradOut. */
    void geluBackward(Tensor x, Tensor gradOut, Tensor gradX);

    /** The stride between rows of GeGLU's gate/up operand {@code t}: its row length when contiguous. */
    static long rowStride(Tensor t) {
        return t.isContiguous() || t.rank() < 2 ? (t.rank() == 0 ? 1 : t.dim(-1)) : t.stride(-2);
    }

    /** GeGLU: {@code out = gelu(gate) * up}. */
    void geglu(Tensor gate, Tensor up, Tensor out);

    /** {@code gradGate = gradOut * up * gelu'(gate)}, {@code gradUp = gradOut * gelu(gate)}. */
    void gegluBackward(Tensor gate, Tensor up, Tensor gradOut, Tensor gradGate, Tensor gradUp);

    FusedOp<ActivationKernel> OP = FusedOp.of("activation", new Cpu(), Cuda::new, new Meta());

    static ActivationKernel on(Tensor t) {
        return OP.on(t);
    }

    /**
     * The reference (torch's {@code approximate="tanh"}, Gemma's {@code gelu_pytorch_tanh}): element-wise, in double,
     * each element read before it is written (so in-place calls are safe).
     */
    final class Cpu implements ActivationKernel {
        static final double SQRT_2_OVER_PI = GELU_BETA;
        static final double CUBIC = GELU_KAPPA;

        private Cpu() {
        }

        /**
         * {@code 0.5 x (1 + tanh(u))} with {@code u = sqrt(2/pi) (x + 0.044715 x^3)}, evaluated as the identical
         * {@code x sigmoid(2u)}: {@code 1 + tanh(u)} cancels for large negative x, the logistic form does not.
         */
        static double gelu(double x) {
            double u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
            return x / (1 + Math.exp(-2 * u));
        }

        /**
         * {@code 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)}, evaluated as the identical
         * {@code s + 2 x s (1 - s) u'} with {@code s = sigmoid(2u)} and {@code 1 - s = sigmoid(-2u)}, accurate in both tails.
         */
        static double geluDerivative(double x) {
            double u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
            double s = 1 / (1 + Math.exp(-2 * u));
            double oneMinusS = 1 / (1 + Math.exp(2 * u));
            return s + 2 * x * s * oneMinusS * SQRT_2_OVER_PI * (1 + 3 * CUBIC * x * x);
        }

        @Override
        public void gelu(Tensor x, Tensor out) {
            Flat xs = Flat.of(x);
            Flat os = Flat.of(out);
            CpuLoops.blocks(out.numel(), (start, end) -> {
                for (long i = start; i < end; i++) {
                    os.set(i, gelu(xs.get(i)));
                }
            });
        }

        @Override
        public void geluBackward(Tensor x, Tensor gradOut, Tensor gradX) {
            Flat xs = Flat.of(x);
            Flat gys = Flat.of(gradOut);
            Flat gxs = Flat.of(gradX);
            CpuLoops.blocks(gradX.numel(), (start, end) -> {
                for (long i = start; i < end; i++) {
                    gxs.set(i, gys.get(i) * geluDerivative(xs.get(i)));
                }
            });
        }

        @Override
        public void geglu(Tensor gate, Tensor up, Tensor out) {
            Flat gs = Flat.of(gate);
            Flat us = Flat.of(up);
            Flat os = Flat.of(out);
            long cols = out.rank() == 0 ? 1 : out.dim(-1);
            long ld = rowStride(gate);
            CpuLoops.blocks(out.numel(), (start, end) -> {
                for (long i = start; i < end; i++) {
                    long s = strided(i, cols, ld);
                    os.set(i, gelu(gs.get(s)) * us.get(s));
                }
            });
        }

        @Override
        public void gegluBackward(Tensor gate, Tensor up, Tensor gradOut, Tensor gradGate, Tensor gradUp) {
            Flat gs = Flat.of(gate);
            Flat us = Flat.of(up);
            Flat gys = Flat.of(gradOut);
            Flat ggs = Flat.of(gradGate);
            Flat gus = Flat.of(gradUp);
            long cols = gradOut.rank() == 0 ? 1 : gradOut.dim(-1);
            long ld = rowStride(gate);
            CpuLoops.blocks(gate.numel(), (start, end) -> {
                for (long i = start; i < end; i++) {
                    long s = strided(i, cols, ld);
                    double g = gs.get(s);
                    double u = us.get(s);
                    double gy = gys.get(i);
                    ggs.set(s, gy * u * geluDerivative(g));
                    gus.set(s, gy * gelu(g));
                }
            });
        }

        /** Element i of rows of {@code cols} at a stride of {@code ld} (kernels/activation.cu's strided). */
        private static long strided(long i, long cols, long ld) {
            return ld == cols ? i : i / cols * ld + i % cols;
        }
    }

    /** kernels/activation.cu, vectorised where every operand is 16-byte aligned. */
    final class Cuda implements ActivationKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        private ActivationKernels kernels() {
            return gpu.family(ActivationKernels.class, b -> new ActivationKernels(b.compiler(), b.stream(), b.context()));
        }

        @Override
        public void gelu(Tensor x, Tensor out) {
            kernels().gelu(x, out);
        }

        @Override
        public void geluBackward(Tensor x, Tensor gradOut, Tensor gradX) {
            kernels().geluBackward(x, gradOut, gradX);
        }

        @Override
        public void geglu(Tensor gate, Tensor up, Tensor out) {
            kernels().geglu(gate, up, out);
        }

        @Override
        public void gegluBackward(Tensor gate, Tensor up, Tensor gradOut, Tensor gradGate, Tensor gradUp) {
            kernels().gegluBackward(gate, up, gradOut, gradGate, gradUp);
        }
    }

    /** No workspace: the op allocates every output. */
    final class Meta implements ActivationKernel {
        private Meta() {
        }

        @Override
        public void gelu(Tensor x, Tensor out) {
        }

        @Override
        public void geluBackward(Tensor x, Tensor gradOut, Tensor gradX) {
        }

        @Override
        public void geglu(Tensor gate, Tensor up, Tensor out) {
        }

        @Override
        public void gegluBackward(Tensor gate, Tensor up, Tensor gradOut, Tensor gradGate, Tensor gradUp) {
        }
    }
}
