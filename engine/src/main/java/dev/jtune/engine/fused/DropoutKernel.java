package dev.jtune.engine.fused;

import dev.jtune.engine.HostElements;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.cuda.CudaBackend;

import java.lang.foreign.MemorySegment;
import java.util.stream.LongStream;

/**
 * Dropout's kernel ({@code ops.Dropout} is the op): cpu reference, cuda launcher (kernels/elementwise.cu's dropout
 * kernels) and meta rule (no workspace), registered once as {@link #OP}.
 */
public interface DropoutKernel {

    /**
     * Inverted dropout: {@code out[i] = x[i] / (1 - p)} where {@link CounterRng#uniform(long, long)} of (seed, i) is
     * {@code >= p}, else 0. The mask depends only on (seed, i), so the backward is this same call on the gradient with
     * the same seed. x and out contiguous of one float dtype; out may be x.
     */
    void apply(Tensor x, double p, long seed, Tensor out);

    FusedOp<DropoutKernel> OP = FusedOp.of("dropout", new Cpu(), Cuda::new, new Meta());

    static DropoutKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The reference, in double, element by element in parallel. */
    final class Cpu implements DropoutKernel {
        private Cpu() {
        }

        @Override
        public void apply(Tensor x, double p, long seed, Tensor out) {
            MemorySegment src = CpuBackend.segmentOf(x);
            MemorySegment dst = CpuBackend.segmentOf(out);
            double keep = 1.0 / (1.0 - p);
            LongStream.range(0, x.numel()).parallel().forEach(i -> {
                double v = CounterRng.uniform(seed, i) >= p ? HostElements.get(src, x.dtype(), x.offset() + i) * keep : 0.0;
                HostElements.set(dst, out.dtype(), out.offset() + i, v);
            });
        }
    }

    /** The element-wise family's dropout kernels, drawing the same counter-based numbers. */
    final class Cuda implements DropoutKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        @Override
        public void apply(Tensor x, double p, long seed, Tensor out) {
            gpu.elementwise().dropout(x, p, seed, out);
        }
    }

    /** No workspace: the op allocates the output. */
    final class Meta implements DropoutKernel {
        private Meta() {
        }

        @Override
        public void apply(Tensor x, double p, long seed, Tensor out) {
        }
    }
}
