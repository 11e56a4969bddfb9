package dev.jtune.engine.optim.host;

import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Gradients accumulated on the host, on every core: a contribution copied from the device (bf16 or fp32) added to (or
 * stored into) an fp32 accumulator, and the accumulator's sum of squares for the global norm. Plain loops (memory
 * bound, split over the cores as {@link HostAdamW} splits its update).
 */
public final class HostGradients {
    /** {@code -Djtune.offload.vectorGradients=false}: the scalar loop (the reference, and a measurement aid). */
    private static final boolean VECTOR = Boolean.parseBoolean(System.getProperty("jtune.offload.vectorGradients", "true"));

    private HostGradients() {
    }

    /**
     * {@code acc[i] (+)= src[i]} for i in [from, to): fp32 accumulator, {@code src} of {@code srcType} (BF16 or F32).
     * {@code assign}: store instead of add (a step's first contribution). Each sum is one fp32 rounding. On the Vector
     * API where present ({@link VectorGradients}, the same bits): the scalar loop held the streamed path to about 55% of
     * the device AdamW's tokens/s on an H100 (270M full fine-tune at 8K, accumulation 8: 268M adds per micro-batch).
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
        HostAdamW.forRanges(from, to, (lo, hi) -> range(src, bf16, acc, lo, hi, assign));
    }

    /** {@link #accumulate}'s loop over [from, to) on the calling thread. */
    private static void range(MemorySegment src, boolean bf16, MemorySegment acc, long from, long to, boolean assign) {
        long tail = HostAdamW.vectorized() && VECTOR ? VectorGradients.accumulate(src, bf16, acc, from, to, assign) : from;
        for (long i = tail; i < to; i++) {
            float g = bf16 ? Numerics.bf16ToFloat(src.getAtIndex(ValueLayout.JAVA_SHORT, i)) : src.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            acc.setAtIndex(ValueLayout.JAVA_FLOAT, i, assign ? g : acc.getAtIndex(ValueLayout.JAVA_FLOAT, i) + g);
        }
    }

    /**
     * A row-sparse contribution to a [tableRows, d] parameter whose fp32 accumulator starts at element {@code at}:
     * {@code acc[at + ids[i] * d + j] += rows[i * d + j]} for i in [0, n), in ascending i for every element, so the bits
     * do not depend on how the cores split the work (each core takes the rows of one range of ids). {@code assign} (the
     * step's first contribution): the parameter's range is zeroed first. Ids outside [0, tableRows) are skipped, as the
     * device's scatter-add skips them.
     */
    public static void addRows(MemorySegment rows, DType srcType, MemorySegment ids, int n, long d, MemorySegment acc, long at,
                               long tableRows, boolean assign) {
        if (srcType != DType.BF16 && srcType != DType.F32) {
            throw new IllegalArgumentException("HostGradients: contributions must be BF16 or F32, got " + srcType);
        }
        if (n < 0 || d <= 0 || at < 0 || (at + tableRows * d) * 4 > acc.byteSize() || srcType.bytesFor(n * d) > rows.byteSize()
                || 4L * n > ids.byteSize()) {
            throw new IndexOutOfBoundsException("HostGradients: " + n + " rows of " + d + " (" + srcType + ", " + rows.byteSize()
                    + " bytes, ids " + ids.byteSize() + " bytes) into rows [0, " + tableRows + ") at element " + at
                    + " of an fp32 accumulator of " + acc.byteSize() + " bytes");
        }
        if (assign) {
            zero(acc, at, at + tableRows * d);
        }
        boolean bf16 = srcType == DType.BF16;
        long rowBytes = srcType.bytesFor(d);
        HostAdamW.forRanges(0, tableRows, 1, (lo, hi) -> {
            for (int i = 0; i < n; i++) {
                int id = ids.getAtIndex(ValueLayout.JAVA_INT, i);
                if (id >= lo && id < hi) {
                    range(rows.asSlice(i * rowBytes, rowBytes), bf16, acc.asSlice((at + id * d) * 4, d * 4), 0, d, false);
                }
            }
        });
    }

    /** Zeroes fp32 elements [from, to) of {@code acc}. */
    public static void zero(MemorySegment acc, long from, long to) {
        acc.asSlice(from * 4, (to - from) * 4).fill((byte) 0);
    }

    /** Elements per partial sum of {@link #sumOfSquares}: a fixed grouping, whatever the number of cores. */
    static final int SQUARES_BLOCK = 1 << 16;
    /**
     * Elements per call of {@link #addSquares}: short calls, so that C2 compiles the loop as a method early in the
     * first norm (the reason {@link VectorAdamW} runs in calls of 512); one long loop per block was left to on-stack
     * replacement, and the streamed 270M norm measured 500-570 ms a step on an H100 host (16 cores) where this machine's
     * 2 cores sum as many elements in about 90 ms.
     */
    private static final int SQUARES_CHUNK = 2048;

    /** {@code sum} plus the squares of fp32 elements [from, to), in order, in double. */
    private static double addSquares(MemorySegment acc, long from, long to, double sum) {
        for (long i = from; i < to; i++) {
            double x = acc.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            sum += x * x;
        }
        return sum;
    }

    /**
     * The sum of the squares of fp32 elements [from, to), accumulated in double: per block of {@link #SQUARES_BLOCK}
     * elements, the blocks' sums then added in order, so the result is the same bits on every run and machine (the
     * clipping factor, and so the weights, must not depend on which thread finished first).
     */
    public static double sumOfSquares(MemorySegment acc, long from, long to) {
        double[] partial = new double[(int) Math.ceilDiv(to - from, SQUARES_BLOCK)];
        HostAdamW.forRanges(from, to, SQUARES_BLOCK, (lo, hi) -> { // whole blocks per range
            for (long start = lo; start < hi; start += SQUARES_BLOCK) {
                long end = Math.min(hi, start + SQUARES_BLOCK);
                double sum = 0;
                for (long c = start; c < end; c += SQUARES_CHUNK) {
                    sum = addSquares(acc, c, Math.min(end, c + SQUARES_CHUNK), sum);
                }
                partial[(int) ((start - from) / SQUARES_BLOCK)] = sum;
            }
        });
        double total = 0;
        for (double p : partial) {
            total += p;
        }
        return total;
    }
}
