package dev.jtune.engine.backend;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The counter-based generator's skip: a stream started n counters later, exactly (integer arithmetic, no tolerance). */
class CounterRngTest {
    private final Random rnd = Seeds.random();

    @Test
    void unmixInvertsMix() {
        for (int k = 0; k < 10_000; k++) {
            long z = rnd.nextLong();
            assertEquals(z, CounterRng.unmix(CounterRng.mix(z)), "unmix(mix(" + z + "))");
        }
        assertEquals(0L, CounterRng.unmix(CounterRng.mix(0)));
        assertEquals(-1L, CounterRng.unmix(CounterRng.mix(-1)));
    }

    @Test
    void aSkippedStreamDrawsTheOriginalsLaterCounters() {
        for (int k = 0; k < 1_000; k++) {
            long seed = rnd.nextLong();
            long n = k % 3 == 0 ? rnd.nextInt(1 << 20) : rnd.nextLong() >>> 2;
            long skipped = CounterRng.skip(seed, n);
            for (long i = 0; i < 8; i++) {
                assertEquals(CounterRng.bits(seed, n + i), CounterRng.bits(skipped, i), "seed " + seed + ", n " + n + ", i " + i);
                assertEquals(CounterRng.uniform(seed, n + i), CounterRng.uniform(skipped, i));
            }
        }
        assertEquals(42L, CounterRng.skip(42, 0));
    }
}
