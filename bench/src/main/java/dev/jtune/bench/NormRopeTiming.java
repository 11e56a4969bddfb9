package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.CudaEvent;
import dev.jtune.engine.fused.RmsNormRopeKernel;

import java.util.Locale;

/**
 * The fused q/k RMSNorm and RoPE kernels alone at Gemma 3's shapes (q [1, 4, T, 256] and k [1, 1, T, 256] bf16, read in
 * the projection's [1, T, H, 256] layout, frozen norm weights as in QLoRA), forward and backward, timed with device
 * events, in bytes a second. Run once with {@code -Djtune.cuda.normRopeHeld=false} to time the shared-memory path.
 * After {@link WarmUp}'s launches. Usage: {@code NormRopeTiming [tokens=8192] [reps=200]}.
 */
public final class NormRopeTiming {
    private NormRopeTiming() {
    }

    public static void main(String[] args) {
        int tokens = args.length > 0 ? Integer.parseInt(args[0]) : 8192;
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 200;
        CudaBackend gpu = CudaBackend.get(0);
        Device d = gpu.device();
        System.out.println("device: " + gpu.description() + ", held rows " + System.getProperty("jtune.cuda.normRopeHeld", "true"));
        for (int heads : new int[] {4, 1}) {
            try (Scope s = Scope.open("norm rope");
                 CudaEvent start = new CudaEvent(true);
                 CudaEvent mid = new CudaEvent(true);
                 CudaEvent end = new CudaEvent(true)) {
                Tensor x = Tensor.uniform(Shape.of(1, tokens, heads, 256), DType.BF16, d, 1, -3, 3).transpose(1, 2);
                Tensor w = Tensor.uniform(Shape.of(256), DType.BF16, d, 2, -1, 1);
                int[] p = new int[tokens];
                for (int i = 0; i < tokens; i++) {
                    p[i] = i;
                }
                Tensor pos = Tensor.fromArray(p, Shape.of(1, tokens), DType.I32, d);
                Tensor out = Tensor.empty(Shape.of(1, heads, tokens, 256), DType.BF16, d);
                Tensor rstd = Tensor.empty(Shape.of((long) tokens * heads), DType.F32, d);
                Tensor g = Tensor.uniform(Shape.of(1, heads, tokens, 256), DType.BF16, d, 3, -1, 1);
                Tensor gx = Tensor.empty(Shape.of(1, tokens, heads, 256), DType.BF16, d).transpose(1, 2);
                RmsNormRopeKernel k = RmsNormRopeKernel.on(x);
                WarmUp.run(gpu, () -> { // compile and load, then clocks up
                    k.forward(x, w, 1e-6, true, pos, 10_000, 1, out, rstd);
                    k.backward(x, w, rstd, true, pos, 10_000, 1, g, gx, null);
                });
                start.record(gpu.stream());
                for (int r = 0; r < reps; r++) {
                    k.forward(x, w, 1e-6, true, pos, 10_000, 1, out, rstd);
                }
                mid.record(gpu.stream());
                for (int r = 0; r < reps; r++) {
                    k.backward(x, w, rstd, true, pos, 10_000, 1, g, gx, null);
                }
                end.record(gpu.stream());
                end.synchronize();
                double fwd = CudaEvent.elapsedMillis(start, mid) / reps;
                double bwd = CudaEvent.elapsedMillis(mid, end) / reps;
                double bytes = (double) tokens * heads * 256 * 2;
                System.out.printf(Locale.ROOT, "norm+rope T=%d heads=%d: forward %.1f us (%.0f GB/s), backward %.1f us (%.0f GB/s)%n",
                        tokens, heads, fwd * 1e3, 2 * bytes / fwd / 1e6, bwd * 1e3, 3 * bytes / bwd / 1e6);
            }
        }
    }
}
