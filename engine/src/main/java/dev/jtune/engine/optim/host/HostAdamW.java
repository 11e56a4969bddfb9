package dev.jtune.engine.optim.host;

import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.backend.AdamWStep;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * torch.optim.AdamW over flat host buffers, on every core: fp32 master weights, fp32 moments, a bf16 or fp32
 * gradient, and optionally the updated weights rounded to bf16 (nearest even, as {@link Numerics#floatToBf16}) into
 * an output buffer. The arithmetic is kernels/optim.cu's {@code adamw} in fp32 (scalars from the host in double, cast
 * to float once; torch's lerp for the first moment), written twice: {@link #stepScalar} is the reference, and the
 * Vector API path ({@code jdk.incubator.vector}, the preferred species) computes the same operations in the same order
 * without fused multiply-adds, so the two agree bit for bit; the vector path runs when the module is in the boot layer
 * ({@code --add-modules jdk.incubator.vector}, which {@code ./jtune} and the tests pass), the scalar one otherwise.
 * Element-wise, so how the range is split over threads does not change a bit.
 */
public final class HostAdamW {
    /** Elements per task at least: below this, splitting costs more than it saves. */
    private static final long MIN_TASK = 1L << 15;
    /** Task boundaries fall on multiples of this (a cache line of fp32 and more), so no two threads share a line. */
    private static final long TASK_ALIGN = 64;

    private static final boolean VECTOR = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    private static volatile ForkJoinPool pool;

    private HostAdamW() {
    }

    /**
     * The fp32 scalars of one step, as optim.cu receives them: computed in double from {@link AdamWStep}, each cast to
     * float once. {@code gradScale}: the factor every gradient is multiplied by first (1 for none).
     */
    public record Scalars(float decay, float w1, float beta2, float w2, float eps, float stepSize, float bc2Sqrt, float gradScale) {
        public static Scalars of(AdamWStep step, double gradScale) {
            return new Scalars((float) (1 - step.lr() * step.weightDecay()), (float) (1 - step.beta1()), (float) step.beta2(),
                    (float) (1 - step.beta2()), (float) step.eps(), (float) (step.lr() / step.biasCorrection1()),
                    (float) Math.sqrt(step.biasCorrection2()), (float) gradScale);
        }

        boolean scaled() {
            return gradScale != 1f;
        }
    }

    /**
     * Flat host buffers of one parameter group, element i of each belonging to the same weight: {@code master},
     * {@code m}, {@code v} fp32 (updated in place), {@code grad} of {@code gradType} (BF16 or F32, read), and
     * {@code weights16} (bf16, written) or null when no 16-bit copy of the weights is wanted. Native byte order; segments
     * that any thread may access (native memory, a shared or global arena), as the update runs on a pool.
     */
    public record Buffers(MemorySegment master, MemorySegment m, MemorySegment v, MemorySegment grad, DType gradType,
                          MemorySegment weights16) {
        public Buffers {
            if (gradType != DType.BF16 && gradType != DType.F32) {
                throw new IllegalArgumentException("HostAdamW: gradients must be BF16 or F32, got " + gradType);
            }
        }

        /** Elements every buffer holds. */
        long capacity() {
            long n = Math.min(Math.min(master.byteSize(), m.byteSize()), v.byteSize()) / 4;
            n = Math.min(n, grad.byteSize() / gradType.bytesFor(1));
            return weights16 == null ? n : Math.min(n, weights16.byteSize() / 2);
        }
    }

    /** Whether steps run on the Vector API (else on the scalar reference, with the same results). */
    public static boolean vectorized() {
        return VECTOR;
    }

    /** Threads the update is split over: one per core. */
    public static int threads() {
        return pool().getParallelism();
    }

    /** One step over elements [from, to) of {@code b}, split over every core; returns when it is done. */
    public static void step(Buffers b, long from, long to, Scalars s) {
        checkRange(b, from, to);
        forRanges(from, to, (lo, hi) -> run(b, lo, hi, s));
    }

    /**
     * {@code master *= factor} over elements [from, to), and the bf16 rounding into {@code weights16} when there is one:
     * bitsandbytes' decay after the Adam step for the fp32 state of small tensors (a step with decay 1, then this), as
     * the device's {@code AdamW8bit} does with one scale. Split over every core.
     */
    public static void scaleMaster(Buffers b, long from, long to, float factor) {
        checkRange(b, from, to);
        forRanges(from, to, (lo, hi) -> {
            for (long i = lo; i < hi; i++) {
                float p = b.master().getAtIndex(ValueLayout.JAVA_FLOAT, i) * factor;
                b.master().setAtIndex(ValueLayout.JAVA_FLOAT, i, p);
                if (b.weights16() != null) {
                    b.weights16().setAtIndex(ValueLayout.JAVA_SHORT, i, Numerics.floatToBf16(p));
                }
            }
        });
    }

    /** Work over elements [from, to) of flat buffers. */
    @FunctionalInterface
    interface RangeTask {
        void run(long from, long to);
    }

    /**
     * Runs {@code task} over [from, to) split into one range per core (ranges of at least {@link #MIN_TASK} elements,
     * starting on multiples of {@link #TASK_ALIGN}); returns when every range is done.
     */
    static void forRanges(long from, long to, RangeTask task) {
        forRanges(from, to, TASK_ALIGN, task);
    }

    /** {@link #forRanges(long, long, RangeTask)} with every range but the last a multiple of {@code align} elements. */
    static void forRanges(long from, long to, long align, RangeTask task) {
        long n = to - from;
        long tasks = Math.min(threads(), Math.max(1, n / MIN_TASK));
        if (tasks <= 1) {
            task.run(from, to);
            return;
        }
        long per = Math.ceilDiv(Math.ceilDiv(n, tasks), align) * align;
        List<ForkJoinTask<?>> running = new ArrayList<>();
        for (long start = from; start < to; start += per) {
            long lo = start;
            long hi = Math.min(to, start + per);
            running.add(pool().submit(() -> task.run(lo, hi)));
        }
        for (ForkJoinTask<?> t : running) {
            t.join();
        }
    }

    private static void run(Buffers b, long from, long to, Scalars s) {
        if (VECTOR) {
            VectorAdamW.step(b, from, to, s);
        } else {
            stepScalar(b, from, to, s);
        }
    }

    /** The fp32 reference, element by element, on the calling thread: optim.cu's {@code adamw} with P = G = float. */
    public static void stepScalar(Buffers b, long from, long to, Scalars s) {
        checkRange(b, from, to);
        boolean bf16 = b.gradType() == DType.BF16;
        boolean lowW1 = s.w1() < 0.5f;
        float oneMinusW1 = 1f - s.w1();
        float negStep = -s.stepSize();
        for (long i = from; i < to; i++) {
            float g = bf16 ? Numerics.bf16ToFloat(b.grad().getAtIndex(ValueLayout.JAVA_SHORT, i))
                    : b.grad().getAtIndex(ValueLayout.JAVA_FLOAT, i);
            if (s.scaled()) {
                g = g * s.gradScale();
            }
            float p = b.master().getAtIndex(ValueLayout.JAVA_FLOAT, i) * s.decay();
            float mi = b.m().getAtIndex(ValueLayout.JAVA_FLOAT, i);
            mi = lowW1 ? mi + s.w1() * (g - mi) : g - (g - mi) * oneMinusW1; // torch's lerp(m, g, w1)
            float vi = b.v().getAtIndex(ValueLayout.JAVA_FLOAT, i) * s.beta2() + s.w2() * g * g;
            float denom = (float) Math.sqrt(vi) / s.bc2Sqrt() + s.eps();
            p = p + negStep * (mi / denom);
            b.m().setAtIndex(ValueLayout.JAVA_FLOAT, i, mi);
            b.v().setAtIndex(ValueLayout.JAVA_FLOAT, i, vi);
            b.master().setAtIndex(ValueLayout.JAVA_FLOAT, i, p);
            if (b.weights16() != null) {
                b.weights16().setAtIndex(ValueLayout.JAVA_SHORT, i, Numerics.floatToBf16(p));
            }
        }
    }

    private static void checkRange(Buffers b, long from, long to) {
        if (from < 0 || to < from || to > b.capacity()) {
            throw new IndexOutOfBoundsException("HostAdamW: elements [" + from + ", " + to + ") of buffers holding " + b.capacity());
        }
    }

    private static ForkJoinPool pool() {
        ForkJoinPool p = pool;
        if (p == null) {
            synchronized (HostAdamW.class) {
                if (pool == null) {
                    AtomicInteger count = new AtomicInteger();
                    pool = new ForkJoinPool(Runtime.getRuntime().availableProcessors(), fj -> {
                        ForkJoinWorkerThread t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(fj);
                        t.setName("jtune-host-adamw-" + count.getAndIncrement());
                        return t;
                    }, null, false);
                }
                p = pool;
            }
        }
        return p;
    }
}
