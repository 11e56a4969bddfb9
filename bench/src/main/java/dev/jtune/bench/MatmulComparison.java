package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.CudaEvent;
import dev.jtune.engine.cuda.CudaStream;

import java.util.Arrays;
import java.util.Locale;

/**
 * The engine's bf16 matmul against cuBLASLt called directly, in one process on one GPU: both timed with CUDA
 * events over batches of back-to-back products on the same stream (as a training step queues them), median of
 * the batches, alternating engine and direct batches so that clocks and temperature affect both alike.
 * Usage: {@code MatmulComparison [n=8192] [batches=30] [perBatch=10]}.
 */
public final class MatmulComparison {
    private MatmulComparison() {
    }

    public static void main(String[] args) {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 8192;
        int batches = args.length > 1 ? Integer.parseInt(args[1]) : 30;
        int perBatch = args.length > 2 ? Integer.parseInt(args[2]) : 10;
        CudaBackend gpu = CudaBackend.get(0);
        CudaStream stream = gpu.stream();
        System.out.println("device: " + gpu.description());
        try (Scope scope = Scope.open("bench");
             CudaEvent start = new CudaEvent(true);
             CudaEvent end = new CudaEvent(true)) {
            Device d = gpu.device();
            Tensor a = Tensor.randn(Shape.of(n, n), DType.BF16, d, 1);
            Tensor b = Tensor.randn(Shape.of(n, n), DType.BF16, d, 2);
            gpu.synchronize();
            try (DirectLtMatmul direct = new DirectLtMatmul(stream.handle(), n, a.address(), b.address())) {
                Runnable engine = () -> {
                    try (Scope step = Scope.open("step")) {
                        for (int i = 0; i < perBatch; i++) {
                            a.matmul(b);
                        }
                    }
                };
                Runnable raw = () -> {
                    for (int i = 0; i < perBatch; i++) {
                        direct.run();
                    }
                };
                WarmUp.run(gpu, () -> { // plans, kernels, clocks
                    engine.run();
                    raw.run();
                });
                double[] te = new double[batches];
                double[] td = new double[batches];
                for (int i = 0; i < batches; i++) {
                    te[i] = time(engine, start, end, stream) / perBatch;
                    td[i] = time(raw, start, end, stream) / perBatch;
                }
                double flop = 2.0 * n * n * n;
                double me = median(te);
                double md = median(td);
                double same = sameResult(a, b, direct, d);
                System.out.printf(Locale.ROOT, "bf16 %d^3, fp32 accumulation, %d batches of %d:%n", n, batches, perBatch);
                System.out.printf(Locale.ROOT, "  engine (Tensor.matmul)   %.3f ms  %.1f TFLOP/s%n", me, flop / me / 1e9);
                System.out.printf(Locale.ROOT, "  cuBLASLt direct          %.3f ms  %.1f TFLOP/s%n", md, flop / md / 1e9);
                System.out.printf(Locale.ROOT, "  engine / direct          %.1f %%%n", 100.0 * md / me);
                System.out.printf(Locale.ROOT, "  max |engine - direct| over the outputs: %s%n", same);
                System.out.println("  peak " + gpu.memoryStats());
            }
        }
    }

    private static double time(Runnable body, CudaEvent start, CudaEvent end, CudaStream stream) {
        start.record(stream);
        body.run();
        end.record(stream);
        end.synchronize();
        return CudaEvent.elapsedMillis(start, end);
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    /** Both paths must compute the same product: compare the engine's output with the direct one. */
    private static double sameResult(Tensor a, Tensor b, DirectLtMatmul direct, Device d) {
        try (Scope s = Scope.open("check")) {
            float[] mine = a.matmul(b).toFloatArray();
            Tensor theirs = Tensor.view(new BorrowedStorage(d, direct.result(), (long) mine.length * 2), a.shape(), DType.BF16);
            float[] ref = theirs.toFloatArray();
            double max = 0;
            for (int i = 0; i < mine.length; i++) {
                max = Math.max(max, Math.abs(mine[i] - ref[i]));
            }
            return max;
        }
    }

    /** A view of memory the engine does not own (the direct path's output); freeing it does nothing. */
    private static final class BorrowedStorage extends dev.jtune.engine.Storage {
        private final long address;

        BorrowedStorage(Device device, long address, long bytes) {
            super(device, bytes, dev.jtune.engine.MemoryCategory.OTHER);
            this.address = address;
        }

        @Override
        public long address() {
            return address;
        }

        @Override
        protected void release() {
        }
    }
}
