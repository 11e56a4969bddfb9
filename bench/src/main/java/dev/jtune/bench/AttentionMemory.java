package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.CudaEvent;
import dev.jtune.engine.fused.AttentionKernel;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionSpec;

import java.util.Locale;

/**
 * Peak GPU memory and time of causal attention forward + backward at Gemma 3 270M's shape (4 query heads, 1 KV
 * head of 256) over a long sequence, by the allocator's own statistics (peak allocated, everything included:
 * inputs, output, gradients, cuBLASLt workspace). Usage: {@code AttentionMemory [tokens=32768] [window=512] [reps=3]}.
 */
public final class AttentionMemory {
    private AttentionMemory() {
    }

    public static void main(String[] args) {
        int t = args.length > 0 ? Integer.parseInt(args[0]) : 32768;
        int window = args.length > 1 ? Integer.parseInt(args[1]) : 512;
        int reps = args.length > 2 ? Integer.parseInt(args[2]) : 3;
        CudaBackend gpu = CudaBackend.get(0);
        Device d = gpu.device();
        System.out.println("device: " + gpu.description());
        AttentionSpec spec = new AttentionSpec(window, 1.0 / Math.sqrt(256), 512);
        for (int r = 0; r < reps; r++) {
            try (Scope s = Scope.open("attention")) {
                gpu.synchronize();
                gpu.allocator().resetPeaks();
                long t0 = System.nanoTime();
                Tensor q = Tensor.randn(Shape.of(1, 4, t, 256), DType.BF16, d, 1).requiresGrad(true);
                Tensor k = Tensor.randn(Shape.of(1, 1, t, 256), DType.BF16, d, 2).requiresGrad(true);
                Tensor v = Tensor.randn(Shape.of(1, 1, t, 256), DType.BF16, d, 3).requiresGrad(true);
                Tensor seed = Tensor.randn(Shape.of(1, 4, t, 256), DType.BF16, d, 4);
                gpu.synchronize();
                long t1 = System.nanoTime();
                Tensor out = Attention.causal(q, k, v, spec);
                gpu.synchronize();
                long t2 = System.nanoTime();
                out.backward(seed);
                gpu.synchronize();
                long t3 = System.nanoTime();
                MemoryStats m = gpu.memoryStats();
                System.out.printf(Locale.ROOT, "T=%d window=%d: forward %.1f ms, backward %.1f ms, peak allocated %s (reserved peak %s), q.grad %s%n",
                        t, window, (t2 - t1) / 1e6, (t3 - t2) / 1e6, MemoryStats.gib(m.peakAllocated()), MemoryStats.gib(m.peakReserved()),
                        q.grad() != null ? "present" : "missing");
            }
        }
        if (gpu.kernels(AttentionKernel.OP).hasFused(DType.BF16, 256)) {
            kernelTimes(gpu, t, window);
        }
    }

    /**
     * The fused kernels alone, timed with device events over 20 back-to-back calls each after {@link WarmUp}'s, and
     * their rate in useful FLOP/s (4 D per visible query-key pair and head forward, 10 D backward: five products, as
     * FlashAttention counts).
     */
    private static void kernelTimes(CudaBackend gpu, int t, int window) {
        Device d = gpu.device();
        int reps = 20;
        double scale = 1.0 / 16;
        try (Scope s = Scope.open("kernels");
             CudaEvent start = new CudaEvent(true);
             CudaEvent mid = new CudaEvent(true);
             CudaEvent end = new CudaEvent(true)) {
            Tensor q = Tensor.randn(Shape.of(1, 4, t, 256), DType.BF16, d, 1);
            Tensor k = Tensor.randn(Shape.of(1, 1, t, 256), DType.BF16, d, 2);
            Tensor v = Tensor.randn(Shape.of(1, 1, t, 256), DType.BF16, d, 3);
            Tensor g = Tensor.randn(Shape.of(1, 4, t, 256), DType.BF16, d, 4);
            Tensor out = Tensor.empty(q.shape(), DType.BF16, d);
            Tensor lse = Tensor.empty(Shape.of(1, 4, t), DType.F32, d);
            Tensor delta = Tensor.zeros(Shape.of(1, 4, t), DType.F32, d);
            Tensor gq = Tensor.empty(q.shape(), DType.BF16, d);
            Tensor gk = Tensor.empty(k.shape(), DType.BF16, d);
            Tensor gv = Tensor.empty(v.shape(), DType.BF16, d);
            WarmUp.run(gpu, () -> { // compile and load, then clocks up
                gpu.kernels(AttentionKernel.OP).fusedForward(q, k, v, window, scale, out, lse);
                gpu.kernels(AttentionKernel.OP).fusedBackward(q, k, v, g, lse, delta, window, scale, gq, gk, gv);
            });
            start.record(gpu.stream());
            for (int r = 0; r < reps; r++) {
                gpu.kernels(AttentionKernel.OP).fusedForward(q, k, v, window, scale, out, lse);
            }
            mid.record(gpu.stream());
            for (int r = 0; r < reps; r++) {
                gpu.kernels(AttentionKernel.OP).fusedBackward(q, k, v, g, lse, delta, window, scale, gq, gk, gv);
            }
            end.record(gpu.stream());
            end.synchronize();
            double fwd = CudaEvent.elapsedMillis(start, mid) / reps;
            double bwd = CudaEvent.elapsedMillis(mid, end) / reps;
            double pairs = 0;
            for (long i = 0; i < t; i++) {
                pairs += window > 0 ? Math.min(i + 1, window) : i + 1;
            }
            double flop = pairs * 4 * 256 * 4;
            System.out.printf(Locale.ROOT, "fused kernels T=%d window=%d: forward %.3f ms (%.0f TFLOP/s), backward %.3f ms (%.0f TFLOP/s)%n",
                    t, window, fwd, flop / fwd / 1e9, bwd, 2.5 * flop / bwd / 1e9);
        }
    }
}
