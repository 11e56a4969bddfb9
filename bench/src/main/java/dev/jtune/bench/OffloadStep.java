package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.HostOffloadAdamW;
import dev.jtune.engine.optim.Optimizer;
import dev.jtune.engine.optim.host.HostAdamW;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.SequencedMap;
import java.util.function.Function;

/**
 * The optimizer step alone over bf16 parameters of a full fine-tune's size, on one GPU: the device AdamW, and the
 * host-offloaded AdamW in step (per bucket size) and delayed, each step timed from the call to the end of the device's
 * queued work (the copies back included), with device and host memory. Gradients are set once (the step does not
 * depend on their values for its cost). Usage: {@code OffloadStep [parameters=268435456] [tensors=64] [reps=5]
 * [buckets=4194304,16777216,67108864]}; run with {@code --add-modules jdk.incubator.vector} (else the host update is
 * scalar, which the first line says).
 */
public final class OffloadStep {
    private OffloadStep() {
    }

    public static void main(String[] args) {
        long parameters = args.length > 0 ? Long.parseLong(args[0]) : 1L << 28;
        int tensors = args.length > 1 ? Integer.parseInt(args[1]) : 64;
        int reps = args.length > 2 ? Integer.parseInt(args[2]) : 5;
        String buckets = args.length > 3 ? args[3] : "4194304,16777216,67108864";
        CudaBackend gpu = CudaBackend.get(0);
        Device d = gpu.device();
        System.out.println("device: " + gpu.description() + "; host update: " + (HostAdamW.vectorized() ? "Vector API" : "scalar")
                + " on " + HostAdamW.threads() + " threads");
        AdamW.Config config = new AdamW.Config(1e-5, 0.9, 0.999, 1e-8, 0.0);
        long each = parameters / tensors;
        run(gpu, "device AdamW", reps, d, tensors, each, p -> new AdamW(new ArrayList<>(p.values()), config));
        for (String b : buckets.split(",")) {
            long bucket = Long.parseLong(b.trim());
            run(gpu, "offload in step, bucket " + bucket, reps, d, tensors, each,
                    p -> HostOffloadAdamW.builder(p, config).bucketElements(bucket).build());
        }
        run(gpu, "offload delayed (the step call's own cost)", reps, d, tensors, each,
                p -> HostOffloadAdamW.builder(p, config).schedule(HostOffloadAdamW.Schedule.DELAYED).build());
    }

    private static void run(CudaBackend gpu, String name, int reps, Device d, int tensors, long each,
                            Function<SequencedMap<String, Tensor>, Optimizer> factory) {
        try (Scope s = Scope.open(name)) {
            SequencedMap<String, Tensor> params = new LinkedHashMap<>();
            for (int i = 0; i < tensors; i++) {
                params.put("p" + i, Tensor.normal(Shape.of(each), DType.BF16, d, i, 0, 0.02).requiresGrad(true));
            }
            Optimizer opt = factory.apply(params);
            gpu.synchronize();
            gpu.resetPeaks();
            double best = Double.MAX_VALUE;
            double total = 0;
            for (int r = 0; r <= reps; r++) {
                try (Scope grads = Scope.open("gradients")) {
                    opt.zeroGrad();
                    for (Tensor p : params.values()) { // d/dp sum(p * 1e-3): every gradient 1e-3
                        p.mul(Tensor.full(Shape.of(1), 1e-3, DType.BF16, d).expand(p.shape())).sum(0).backward();
                    }
                    gpu.synchronize();
                    long t0 = System.nanoTime();
                    opt.step();
                    gpu.synchronize();
                    double ms = (System.nanoTime() - t0) / 1e6;
                    if (r > 0) { // the first includes the JIT compilation of the host update
                        best = Math.min(best, ms);
                        total += ms;
                    }
                }
            }
            MemoryStats m = gpu.memoryStats();
            System.out.printf(Locale.ROOT, "%s: best %.1f ms, mean %.1f ms per step; device peak %s, host-mapped %s%n", name, best,
                    total / reps, MemoryStats.gib(m.peakAllocated()), MemoryStats.gib(m.host().peak()));
            if (opt instanceof HostOffloadAdamW h) {
                h.close();
            }
        }
    }
}
