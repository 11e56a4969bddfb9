package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.CudaEvent;
import dev.jtune.engine.cuda.LossKernels;
import dev.jtune.engine.fused.CrossEntropyKernel;

import java.util.Locale;

/**
 * The cross-entropy kernels alone at the linear cross-entropy's shape (chunks of 512 tokens of Gemma's 262,144-entry
 * vocabulary in bf16, the logits turned into their gradient in place, as its gradient-in-forward path runs them):
 * forward then backward (loss.cu, the logits read twice), against the one pass of loss_cluster.cu (read once), timed
 * with device events, in useful bytes a second. Also the largest difference between the two results, from the same
 * logits. Usage: {@code CrossEntropyTiming [tokens=8192] [reps=10] [vocab=262144] [chunk=512]}.
 */
public final class CrossEntropyTiming {
    private static final int IGNORE = -100;

    private CrossEntropyTiming() {
    }

    public static void main(String[] args) {
        int tokens = args.length > 0 ? Integer.parseInt(args[0]) : 8192;
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        long vocab = args.length > 2 ? Long.parseLong(args[2]) : 262_144;
        int chunk = args.length > 3 ? Integer.parseInt(args[3]) : 512;
        CudaBackend gpu = CudaBackend.get(0);
        Device d = gpu.device();
        System.out.println("device: " + gpu.description());
        try (Scope s = Scope.open("cross-entropy")) {
            Tensor source = Tensor.uniform(Shape.of(chunk, vocab), DType.BF16, d, 1, -4, 4);
            Tensor logits = source.copy();
            int[] label = new java.util.Random(2).ints(chunk, 0, (int) vocab).toArray();
            Tensor labels = Tensor.fromArray(label, Shape.of(chunk), DType.I32, d);
            Tensor scale = Tensor.full(Shape.of(1), 1.0 / tokens, DType.F32, d);
            Tensor loss = Tensor.empty(Shape.of(chunk), DType.F32, d);
            Tensor lse = Tensor.empty(Shape.of(chunk), DType.F32, d);
            int chunks = Math.ceilDiv(tokens, chunk);
            double twoKernels = time(gpu, chunks, reps, () -> {
                CrossEntropyKernel.on(logits).forward(logits, labels, IGNORE, loss, lse);
                CrossEntropyKernel.on(logits).backward(logits, labels, lse, IGNORE, scale, logits);
            });
            double onePass = withClusters(() -> time(gpu, chunks, reps,
                    () -> CrossEntropyKernel.on(logits).forwardWithGradient(logits, labels, IGNORE, scale, loss, lse, logits)));
            double bytes = (double) chunks * chunk * vocab * DType.BF16.byteSize();
            System.out.printf(Locale.ROOT, "cross-entropy, %d tokens x %d vocabulary in chunks of %d: forward + backward %.3f ms (%.0f GB/s over 3 passes), "
                            + "one pass %.3f ms (%.0f GB/s over 2 passes)%n",
                    tokens, vocab, chunk, twoKernels, 3 * bytes / twoKernels / 1e6, onePass, 2 * bytes / onePass / 1e6);

            Tensor a = source.copy();
            Tensor lossA = Tensor.empty(Shape.of(chunk), DType.F32, d);
            CrossEntropyKernel.on(a).forward(a, labels, IGNORE, lossA, lse);
            CrossEntropyKernel.on(a).backward(a, labels, lse, IGNORE, scale, a);
            Tensor b = source.copy();
            Tensor lossB = Tensor.empty(Shape.of(chunk), DType.F32, d);
            withClusters(() -> {
                CrossEntropyKernel.on(b).forwardWithGradient(b, labels, IGNORE, scale, lossB, lse, b);
                return 0.0;
            });
            System.out.printf(Locale.ROOT, "largest |two kernels - one pass|: loss %.3g, gradient (first 16 rows) %.3g%n",
                    maxDifference(lossA, lossB), maxDifference(a.slice(0, 0, 16), b.slice(0, 0, 16)));
        }
    }

    /** Milliseconds per {@code chunks} calls of {@code call}, the mean of {@code reps} timed rounds after {@link WarmUp}'s. */
    private static double time(CudaBackend gpu, int chunks, int reps, Runnable call) {
        WarmUp.run(gpu, call); // compile and load, then clocks up
        try (CudaEvent start = new CudaEvent(true); CudaEvent end = new CudaEvent(true)) {
            start.record(gpu.stream());
            for (int r = 0; r < reps * chunks; r++) {
                call.run();
            }
            end.record(gpu.stream());
            end.synchronize();
            return CudaEvent.elapsedMillis(start, end) / reps;
        }
    }

    private static double withClusters(java.util.function.DoubleSupplier run) {
        String before = System.getProperty(LossKernels.CLUSTER_PROPERTY);
        System.setProperty(LossKernels.CLUSTER_PROPERTY, "true");
        try {
            return run.getAsDouble();
        } finally {
            if (before == null) {
                System.clearProperty(LossKernels.CLUSTER_PROPERTY);
            } else {
                System.setProperty(LossKernels.CLUSTER_PROPERTY, before);
            }
        }
    }

    private static double maxDifference(Tensor x, Tensor y) {
        float[] p = x.toFloatArray();
        float[] q = y.toFloatArray();
        double worst = 0;
        for (int i = 0; i < p.length; i++) {
            worst = Math.max(worst, Math.abs((double) p[i] - q[i]));
        }
        return worst;
    }
}
