package dev.jtune.engine.optim.host;

import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.DoubleAdder;

/**
 * Gradients accumulated on the host, on every core: a contribution copied from the device (bf16 or fp32) added to (or
 * stored into) an fp32 accumulator, and the accumulator's sum of squares for the global norm. Plain loops (memory
 * bound, split over the cores as {@link HostAdamW} splits its update).
 */
public final class HostGradients {
    private HostGradients() {
    }

    /**
     * {@code acc[i] (+)= src[i]} for i in [from, to): fp32 accumulator, {@code src} of {@code srcType} (BF16 or F32).
     * {@code assign}: store instead of add (a step's first contribution). Each sum is one fp32 rounding.
     */
    public static void accumulate(MemorySegment src, DType srcType, MemorySegment acc, long from, long to, boolean assign) {
        if (srcType != DType.BF16 && srcType != DType.F32) {
            throw new IllegalArgumentException("HostGradients: contributions must be BF16 or F32, got " + srcType);
        }
        if (from < 0 || to < from || to * 4 > acc.byteSize() || srcType.bytesFor(to) > src.byteSize()) {
            throw new IndexOutOfBoundsException("HostGradients: elements [" + from + ", " + to + ") of a " + srcType
                    + " source of " + src.byteSize() + " bytes and an fp32 accumulator of " + acc.byteSize() + " bytes");
        }
        boolean bf16 = srcType == DType.BF16;
        HostAdamW.forRanges(from, to, (lo, hi) -> {
            for (long i = lo; i < hi; i++) {
                float g = bf16 ? Numerics.bf16ToFloat(src.getAtIndex(ValueLayout.JAVA_SHORT, i)) : src.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                acc.setAtIndex(ValueLayout.JAVA_FLOAT, i, assign ? g : acc.getAtIndex(ValueLayout.JAVA_FLOAT, i) + g);
            }
        });
    }

    /** Zeroes fp32 elements [from, to) of {@code acc}. */
    public static void zero(MemorySegment acc, long from, long to) {
        acc.asSlice(from * 4, (to - from) * 4).fill((byte) 0);
    }

    /** The sum of the squares of fp32 elements [from, to), accumulated in double. */
    public static double sumOfSquares(MemorySegment acc, long from, long to) {
        DoubleAdder total = new DoubleAdder();
        HostAdamW.forRanges(from, to, (lo, hi) -> {
            double sum = 0;
            for (long i = lo; i < hi; i++) {
                double x = acc.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                sum += x * x;
            }
            total.add(sum);
        });
        return total.sum();
    }
}
