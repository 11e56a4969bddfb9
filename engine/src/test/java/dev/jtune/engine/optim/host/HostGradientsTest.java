package dev.jtune.engine.optim.host;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The host sum of squares (the streamed gradients' norm) is the blocks' double sums added in block order: the same bits
 * as that sequential reference, for ranges that start and end inside blocks, so the clipping factor never depends
 * on which thread finished first (a GPU run once differed from the cpu's in the last bit).
 */
class HostGradientsTest {
    /** The accumulation (vectorized where the Vector API is present) equals the scalar fp32 adds bit for bit. */
    @Test
    void accumulationEqualsTheScalarAddsBitForBit() {
        Random rnd = Seeds.random();
        int n = 3 * 512 + 37; // whole chunks, a partial one and a tail shorter than a vector
        try (Arena arena = Arena.ofShared()) {
            for (dev.jtune.engine.DType type : new dev.jtune.engine.DType[] {dev.jtune.engine.DType.BF16, dev.jtune.engine.DType.F32}) {
                MemorySegment acc = arena.allocate(n * 4L, 64);
                float[] expected = new float[n];
                for (int c = 0; c < 3; c++) { // the first stores, the next two add
                    MemorySegment src = arena.allocate(type.bytesFor(n), 64);
                    for (int i = 0; i < n; i++) {
                        float g = (float) rnd.nextGaussian() * (float) Math.pow(10, rnd.nextInt(7) - 3);
                        if (type == dev.jtune.engine.DType.BF16) {
                            short bits = dev.jtune.engine.Numerics.floatToBf16(g);
                            src.setAtIndex(ValueLayout.JAVA_SHORT, i, bits);
                            g = dev.jtune.engine.Numerics.bf16ToFloat(bits);
                        } else {
                            src.setAtIndex(ValueLayout.JAVA_FLOAT, i, g);
                        }
                        expected[i] = c == 0 ? g : expected[i] + g;
                    }
                    HostGradients.accumulate(src, type, acc, 0, n, c == 0);
                }
                for (int i = 0; i < n; i++) {
                    assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(acc.getAtIndex(ValueLayout.JAVA_FLOAT, i)),
                            type + " element " + i + " (vectorized: " + HostAdamW.vectorized() + ")");
                }
            }
        }
    }

    /**
     * Row-sparse contributions: each row added into its id's row of the parameter in ascending order (duplicate ids
     * included), the rest of the accumulator untouched (or zeroed by the step's first contribution), ids outside the
     * table skipped; the same bits as that sequential loop however the cores split the ids, on a table big enough to be
     * split (more rows than one task's minimum).
     */
    @Test
    void rowsAddIntoTheirIdsInOrderBitForBit() {
        Random rnd = Seeds.random();
        int vocab = 70_000;
        int d = 37; // a row shorter than some vectors and not a multiple of any
        long at = 5; // the parameter's offset in the flat accumulator
        int n = 3000;
        try (Arena arena = Arena.ofShared()) {
            for (dev.jtune.engine.DType type : new dev.jtune.engine.DType[] {dev.jtune.engine.DType.BF16, dev.jtune.engine.DType.F32}) {
                long total = at + (long) vocab * d + 3;
                MemorySegment acc = arena.allocate(total * 4, 64);
                float[] expected = new float[(int) total];
                for (int i = 0; i < total; i++) {
                    expected[i] = (float) rnd.nextGaussian();
                    acc.setAtIndex(ValueLayout.JAVA_FLOAT, i, expected[i]);
                }
                for (int c = 0; c < 2; c++) { // the first assigns (zeroes the parameter first), the second adds
                    if (c == 0) {
                        for (long i = at; i < at + (long) vocab * d; i++) {
                            expected[(int) i] = 0;
                        }
                    }
                    MemorySegment rows = arena.allocate(type.bytesFor((long) n * d), 64);
                    MemorySegment ids = arena.allocate(4L * n, 64);
                    for (int i = 0; i < n; i++) {
                        // ids clustered so that many repeat, a few outside the table
                        int id = rnd.nextInt(50) == 0 ? (rnd.nextBoolean() ? -1 - rnd.nextInt(9) : vocab + rnd.nextInt(9)) : rnd.nextInt(vocab / 100) * 100;
                        ids.setAtIndex(ValueLayout.JAVA_INT, i, id);
                        for (int j = 0; j < d; j++) {
                            float g = (float) rnd.nextGaussian();
                            if (type == dev.jtune.engine.DType.BF16) {
                                short bits = dev.jtune.engine.Numerics.floatToBf16(g);
                                rows.setAtIndex(ValueLayout.JAVA_SHORT, (long) i * d + j, bits);
                                g = dev.jtune.engine.Numerics.bf16ToFloat(bits);
                            } else {
                                rows.setAtIndex(ValueLayout.JAVA_FLOAT, (long) i * d + j, g);
                            }
                            if (id >= 0 && id < vocab) {
                                expected[(int) (at + (long) id * d + j)] += g;
                            }
                        }
                    }
                    HostGradients.addRows(rows, type, ids, n, d, acc, at, vocab, c == 0);
                }
                for (int i = 0; i < total; i++) {
                    assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(acc.getAtIndex(ValueLayout.JAVA_FLOAT, i)),
                            type + " element " + i + " (vectorized: " + HostAdamW.vectorized() + ")");
                }
            }
        }
    }

    @Test
    void theSumOfSquaresIsTheBlockOrderedSumBitForBit() {
        Random rnd = Seeds.random();
        long n = 5L * HostGradients.SQUARES_BLOCK + 1234;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment acc = arena.allocate(n * 4, 64);
            for (long i = 0; i < n; i++) {
                acc.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rnd.nextGaussian() * (1 + rnd.nextInt(1000)));
            }
            for (long[] range : new long[][] {{0, n}, {17, n - 5}, {HostGradients.SQUARES_BLOCK, 3L * HostGradients.SQUARES_BLOCK + 9}}) {
                double expected = 0;
                for (long start = range[0]; start < range[1]; start += HostGradients.SQUARES_BLOCK) {
                    double block = 0;
                    for (long i = start; i < Math.min(range[1], start + HostGradients.SQUARES_BLOCK); i++) {
                        double x = acc.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                        block += x * x;
                    }
                    expected += block;
                }
                for (int repeat = 0; repeat < 3; repeat++) {
                    assertEquals(expected, HostGradients.sumOfSquares(acc, range[0], range[1]), 0.0,
                            "elements [" + range[0] + ", " + range[1] + "), repeat " + repeat);
                }
            }
        }
    }
}
