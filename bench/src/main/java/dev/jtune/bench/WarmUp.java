package dev.jtune.bench;

import dev.jtune.engine.cuda.CudaBackend;

/**
 * Keeps the GPU busy before a timed window: a few milliseconds of launches on an idle GPU run at its idle clocks (the
 * twenty-fourth session timed the fused q/k norm and RoPE at ~100 us over 20 launches, ~31 us in a training step's
 * profile and ~33 us after this warm-up). Every kernel-timing bench calls it between compiling its kernels and timing
 * them.
 */
final class WarmUp {
    /** How long the GPU is kept busy: long enough for an H100 to reach its clocks (measured: 0.5 s was). */
    static final long MILLIS = 500;

    private WarmUp() {
    }

    /** Runs {@code call} (a unit of GPU work, its first run compiling and loading) for at least {@link #MILLIS} of wall time. */
    static void run(CudaBackend gpu, Runnable call) {
        long until = System.nanoTime() + MILLIS * 1_000_000L;
        do {
            call.run();
            gpu.synchronize(); // wall time measures the GPU's work, not the queue's
        } while (System.nanoTime() < until);
    }
}
