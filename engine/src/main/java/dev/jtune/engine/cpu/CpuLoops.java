package dev.jtune.engine.cpu;

import dev.jtune.engine.DType;
import dev.jtune.engine.HostElements;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.function.LongConsumer;
import java.util.stream.LongStream;

/**
 * The loops the fused ops' cpu references share (they live with their ops in {@code dev.jtune.engine.fused}): element ranges and rows run in parallel, and {@link Flat}, a contiguous
 * tensor seen as a flat array of doubles (read exactly, written with one rounding to its dtype). Every kernel reads
 * and writes each tensor through it in that tensor's own dtype, so the SPI's rule that F64 inputs come with F64
 * statistics and accumulators (rstd, lse, loss, scores, sums, optimizer state) needs no special case.
 */
public final class CpuLoops {
    /** Elements per task of an element-wise loop: enough to amortise a fork, few enough to spread the work. */
    public static final long BLOCK = 1 << 14;

    private CpuLoops() {
    }

    public interface Range {
        void run(long start, long end);
    }

    /** Runs {@code body} over [0, n) in blocks of {@link #BLOCK}, in parallel when there are several. */
    public static void blocks(long n, Range body) {
        long count = Math.ceilDiv(n, BLOCK);
        if (count <= 1) {
            if (n > 0) {
                body.run(0, n);
            }
            return;
        }
        LongStream.range(0, count).parallel().forEach(b -> body.run(b * BLOCK, Math.min(n, (b + 1) * BLOCK)));
    }

    /** Runs {@code body} for every row in [0, rows), in parallel. */
    public static void rows(long rows, LongConsumer body) {
        LongStream.range(0, rows).parallel().forEach(body);
    }

    /** The length of the last axis, as the int a row buffer needs. */
    public static int lastDim(String op, Tensor t) {
        long n = t.dim(-1);
        if (n > Integer.MAX_VALUE - 8) {
            throw new ShapeException(op + ": rows of " + n + " elements (" + t.describe() + ") are too long for the cpu backend");
        }
        return (int) n;
    }

    /** A contiguous tensor's elements as a flat array: element i is at storage index {@code offset + i}. */
    public record Flat(MemorySegment seg, DType dtype, long base) {
        public static Flat of(Tensor t) {
            return new Flat(CpuBackend.segmentOf(t), t.dtype(), t.offset());
        }

        public double get(long i) {
            return HostElements.get(seg, dtype, base + i);
        }

        public long getLong(long i) {
            return HostElements.getLong(seg, dtype, base + i);
        }

        public void set(long i, double v) {
            HostElements.set(seg, dtype, base + i, v);
        }

        /** Elements [first, first + into.length) into {@code into}; returns it. */
        public double[] read(long first, double[] into) {
            for (int j = 0; j < into.length; j++) {
                into[j] = HostElements.get(seg, dtype, base + first + j);
            }
            return into;
        }

        /** Stores {@code values} at elements [first, first + values.length), each rounded once. */
        public void write(long first, double[] values) {
            for (int j = 0; j < values.length; j++) {
                HostElements.set(seg, dtype, base + first + j, values[j]);
            }
        }

        /** Sets elements [first, first + n) to zero. */
        public void zero(long first, long n) {
            for (long j = 0; j < n; j++) {
                HostElements.set(seg, dtype, base + first + j, 0.0);
            }
        }
    }
}
