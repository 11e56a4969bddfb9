package dev.jtune.engine.fused;

import dev.jtune.engine.HostElements;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.cuda.CudaBackend;

import java.lang.foreign.MemorySegment;
import java.util.stream.LongStream;

/**
 * Soft-capping's kernels (Gemma 2/3's logit caps; {@code ops.Softcap} is the op, and attention and the linear
 * cross-entropy cap through it too): cpu reference, cuda launcher (kernels/elementwise.cu's softcap kernels) and meta
 * rule (no workspace), registered once as {@link #OP}. Tensors contiguous.
 */
public interface SoftcapKernel {

    /** {@code out = cap * tanh(x / cap)}; out may be x. */
    void forward(Tensor x, double cap, Tensor out);

    /**
     * Backward from the output z: {@code gradX = gradOut * (1 - (z / cap)^2)}; z, gradOut and gradX of one dtype;
     * gradX may be gradOut.
     */
    void backward(Tensor z, Tensor gradOut, double cap, Tensor gradX);

    FusedOp<SoftcapKernel> OP = FusedOp.of("softcap", new Cpu(), Cuda::new, new Meta());

    static SoftcapKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The reference, in double, element by element in parallel. */
    final class Cpu implements SoftcapKernel {
        private Cpu() {
        }

        @Override
        public void forward(Tensor x, double cap, Tensor out) {
            MemorySegment src = CpuBackend.segmentOf(x);
            MemorySegment dst = CpuBackend.segmentOf(out);
            LongStream.range(0, x.numel()).parallel().forEach(i ->
                    HostElements.set(dst, out.dtype(), out.offset() + i, cap * Math.tanh(HostElements.get(src, x.dtype(), x.offset() + i) / cap)));
        }

        @Override
        public void backward(Tensor z, Tensor gradOut, double cap, Tensor gradX) {
            MemorySegment zs = CpuBackend.segmentOf(z);
            MemorySegment gs = CpuBackend.segmentOf(gradOut);
            MemorySegment dst = CpuBackend.segmentOf(gradX);
            LongStream.range(0, z.numel()).parallel().forEach(i -> {
                double t = HostElements.get(zs, z.dtype(), z.offset() + i) / cap;
                HostElements.set(dst, gradX.dtype(), gradX.offset() + i, HostElements.get(gs, gradOut.dtype(), gradOut.offset() + i) * (1 - t * t));
            });
        }
    }

    /** The element-wise family's softcap kernels. */
    final class Cuda implements SoftcapKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        @Override
        public void forward(Tensor x, double cap, Tensor out) {
            gpu.elementwise().softcap(x, null, cap, out);
        }

        @Override
        public void backward(Tensor z, Tensor gradOut, double cap, Tensor gradX) {
            if (z.dtype() != gradOut.dtype() || z.dtype() != gradX.dtype()) {
                throw new UnsupportedOpException("softcapBackward: z, gradOut and gradX must share a dtype, got "
                        + z.dtype() + ", " + gradOut.dtype() + ", " + gradX.dtype());
            }
            gpu.elementwise().softcap(z, gradOut, cap, gradX);
        }
    }

    /** No workspace: the op allocates every output. */
    final class Meta implements SoftcapKernel {
        private Meta() {
        }

        @Override
        public void forward(Tensor x, double cap, Tensor out) {
        }

        @Override
        public void backward(Tensor z, Tensor gradOut, double cap, Tensor gradX) {
        }
    }
}
