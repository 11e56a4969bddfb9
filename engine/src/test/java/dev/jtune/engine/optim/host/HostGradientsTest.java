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
    @Test
    void theSumOfSquaresIsTheBlockOrderedSumBitForBit() {
        Random rnd = Seeds.random();
        long n = 5L * HostGradients.SQUARES_BLOCK + 1234;
        try (Arena arena = Arena.ofConfined()) {
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
