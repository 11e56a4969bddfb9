package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.HostVisible;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.optim.host.HostAdamW;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Locale;

/**
 * The host-offloaded optimizer's update alone (optim.host.HostAdamW, every core), over the same number of parameters
 * held two ways: ordinary (pageable) host memory from an {@link Arena}, and pinned host-mapped memory
 * ({@link Placement#HOST_MAPPED} on cuda:0, cuMemHostAlloc) as HostOffloadAdamW holds its master and moments today.
 * Why: on a 2-core cpu machine the update of 64M bf16 parameters in ordinary memory took 33 ms (about 54 GB/s), while
 * on the H100 host, over pinned memory and 16 cores, 268M took 620-2,400 ms (about 3-12 GB/s); if pinned memory is
 * what is slow there, the master and moments belong in ordinary memory and only the copy buffers in pinned memory.
 * Usage: {@code HostUpdateMemory [parameters=268435456] [bucket=67108864] [reps=4]}; with
 * {@code --add-modules jdk.incubator.vector}. Needs a GPU for the pinned case (else it runs the ordinary one only).
 */
public final class HostUpdateMemory {
    private HostUpdateMemory() {
    }

    public static void main(String[] args) {
        long n = args.length > 0 ? Long.parseLong(args[0]) : 1L << 28;
        long bucket = args.length > 1 ? Long.parseLong(args[1]) : 1L << 26;
        int reps = args.length > 2 ? Integer.parseInt(args[2]) : 4;
        System.out.printf(Locale.ROOT, "host update of %,d bf16 parameters in buckets of %,d on %d threads%n", n, bucket, HostAdamW.threads());
        Arena arena = Arena.ofShared();
        time("ordinary memory", new HostAdamW.Buffers(arena.allocate(n * 4, 64), arena.allocate(n * 4, 64), arena.allocate(n * 4, 64),
                arena.allocate(n * 2, 64), DType.BF16, arena.allocate(n * 2, 64)), n, bucket, reps);
        arena.close();
        if (dev.jtune.engine.cuda.CudaBackend.deviceCount() == 0) {
            System.out.println("no GPU: the pinned case is left out");
            return;
        }
        try (Scope s = Scope.open("pinned")) {
            Device gpu = Device.cuda(0);
            time("pinned host-mapped memory", new HostAdamW.Buffers(pinned(n, DType.F32, gpu), pinned(n, DType.F32, gpu), pinned(n, DType.F32, gpu),
                    pinned(n, DType.BF16, gpu), DType.BF16, pinned(n, DType.BF16, gpu)), n, bucket, reps);
        }
    }

    private static MemorySegment pinned(long n, DType dtype, Device gpu) {
        Tensor t = Tensor.zeros(Shape.of(n), dtype, gpu, Placement.HOST_MAPPED);
        return ((HostVisible) TensorInternals.storage(t)).hostSegment();
    }

    private static void time(String what, HostAdamW.Buffers b, long n, long bucket, int reps) {
        double best = Double.MAX_VALUE;
        java.util.List<String> times = new java.util.ArrayList<>();
        for (int rep = 0; rep <= reps; rep++) { // rep 0 warms up (the vector loop's compilation)
            HostAdamW.Scalars s = HostAdamW.Scalars.of(new AdamWStep(1e-4, 0.9, 0.999, 1e-8, 0.01, rep + 1), 1.0);
            long t = System.nanoTime();
            for (long from = 0; from < n; from += bucket) {
                HostAdamW.step(b, from, Math.min(n, from + bucket), s);
            }
            double ms = (System.nanoTime() - t) / 1e6;
            times.add(String.format(Locale.ROOT, "%.1f", ms));
            if (rep > 0) {
                best = Math.min(best, ms);
            }
        }
        System.out.printf(Locale.ROOT, "%s: best %.1f ms per update (%.1f GB/s of the 28 bytes a parameter moves); each: %s ms%n", what, best,
                n * 28 / (best / 1e3) / 1e9, String.join(", ", times));
    }
}
