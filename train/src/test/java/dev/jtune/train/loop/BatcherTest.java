package dev.jtune.train.loop;

import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.train.data.Example;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Batcher}'s orders (grouped by length, HF's random order) and packed micro-batches. */
class BatcherTest {
    private static final List<Example> EXAMPLES = TrainerTest.examples(30, 5);

    private static int[] flat(List<int[]> batches) {
        return batches.stream().flatMapToInt(Arrays::stream).toArray();
    }

    @Test
    void randomOrderIsTheSeededShuffleWithoutTheLengthGrouping() {
        Batcher grouped = new Batcher(EXAMPLES, 4, 9, 0);
        Batcher random = new Batcher(EXAMPLES, 4, 9, 0, new Batching(Batching.Order.RANDOM, 0));
        int[] g = flat(grouped.epoch(0));
        int[] r = flat(random.epoch(0));
        assertArrayEquals(r, flat(new Batcher(EXAMPLES, 4, 9, 0, new Batching(Batching.Order.RANDOM, 0)).epoch(0)), "reproducible");
        assertFalse(Arrays.equals(g, r), "another order than the grouped one");
        assertFalse(Arrays.equals(r, flat(random.epoch(1))), "each epoch its own shuffle");
        assertFalse(Arrays.equals(r, flat(new Batcher(EXAMPLES, 4, 10, 0, new Batching(Batching.Order.RANDOM, 0)).epoch(0))),
                "the seed decides");
        // the same rows: the grouped order is the shuffle sorted longest first (one mega-batch here)
        int[] sorted = Arrays.stream(r).boxed().sorted((a, b) -> Integer.compare(EXAMPLES.get(b).length(), EXAMPLES.get(a).length()))
                .mapToInt(Integer::intValue).toArray();
        assertArrayEquals(sorted, g);
    }

    @Test
    void packedMicroBatchesCarryTheirLayoutAndUnpackedOnesNone() {
        int max = 24;
        Batcher packed = new Batcher(EXAMPLES, 2, 9, 0, new Batching(Batching.Order.GROUP_BY_LENGTH, max));
        assertTrue(packed.rows() < EXAMPLES.size(), packed.rows() + " rows");
        int tokens = 0;
        int counted = 0;
        for (int[] b : packed.epoch(0)) {
            tokens += packed.tokens(b);
            counted += packed.countedTokens(b);
            try (Scope s = Scope.open("batch")) {
                Batcher.Batch batch = packed.batch(b, Device.CPU);
                int t = (int) batch.ids().dim(1);
                assertTrue(t <= max);
                int[] seg = batch.layout().segments().toIntArray();
                int[] pos = batch.layout().positions().toIntArray();
                int[] labels = batch.labels().toIntArray();
                for (int i = 0; i < seg.length; i++) {
                    if (seg[i] < 0) { // padding: ignored, at position 0, only at a row's end
                        assertEquals(Example.IGNORE, labels[i]);
                        assertEquals(0, pos[i]);
                        assertTrue(i % t == t - 1 || seg[i + 1] < 0, "padding at the end of its row");
                    } else if (pos[i] == 0) {
                        assertEquals(Example.IGNORE, labels[i], "a sample's first label predicts nothing");
                    }
                }
            }
        }
        assertEquals(EXAMPLES.stream().mapToInt(Example::length).sum(), tokens, "every token once, padding not counted");
        assertEquals(EXAMPLES.stream().mapToInt(Example::countedTokens).sum(), counted);
        Batcher plain = new Batcher(EXAMPLES, 2, 9, 0);
        try (Scope s = Scope.open("batch")) {
            assertNull(plain.batch(plain.epoch(0).getFirst(), Device.CPU).layout());
        }
    }
}
