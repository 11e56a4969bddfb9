package dev.jtune.train.data;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Packer}: best-fit decreasing into rows, whole samples with their own positions, labels that never cross. */
class PackerTest {
    private static Example example(int length, int salt) {
        int[] ids = new int[length];
        int[] labels = new int[length];
        for (int i = 0; i < length; i++) {
            ids[i] = 1000 * salt + i;
            labels[i] = i % 3 == 0 ? Example.IGNORE : ids[i] + 1;
        }
        return new Example(ids, labels);
    }

    private static List<Example> examples(int... lengths) {
        List<Example> l = new ArrayList<>();
        for (int i = 0; i < lengths.length; i++) {
            l.add(example(lengths[i], i + 1));
        }
        return l;
    }

    @Test
    void bestFitDecreasingFillsRowsAsStated() {
        // longest first: 6 opens row 0 (room 4); 5 opens row 1 (room 5); 4 fits row 0 best (room 4); 3 and 2 go to row 1
        List<Packer.Row> rows = Packer.pack(examples(3, 6, 2, 5, 4), 10);
        assertEquals(2, rows.size());
        assertArrayEquals(new int[] {1, 4}, rows.get(0).examples());
        assertArrayEquals(new int[] {3, 0, 2}, rows.get(1).examples());
        assertEquals(10, rows.get(0).length());
        assertEquals(10, rows.get(1).length());
        // equal room: the row opened first; equal lengths: data order
        List<Packer.Row> ties = Packer.pack(examples(4, 4, 4, 4), 8);
        assertArrayEquals(new int[] {0, 1}, ties.get(0).examples());
        assertArrayEquals(new int[] {2, 3}, ties.get(1).examples());
    }

    @Test
    void aTooLongExampleKeepsItsHeadAloneInARow() {
        List<Packer.Row> rows = Packer.pack(examples(3, 12), 8);
        assertEquals(2, rows.size());
        Packer.Row first = rows.get(0);
        assertArrayEquals(new int[] {1}, first.examples());
        assertArrayEquals(Arrays.copyOf(example(12, 2).ids(), 8), first.ids());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7}, first.positions());
    }

    /**
     * Random examples and row lengths: every example is in exactly one row, whole (or its head when too long), with
     * segment ids 0..n-1 in order, positions restarting at 0, its labels but the first, which is ignored (so the shift
     * never crosses a boundary), no row over the limit, and no example that opened a row could have gone into an
     * earlier one (each row's final room is less than any later row's first example); packing twice gives the same rows.
     */
    @Test
    void randomExamplesPackWholeDeterministicallyWithBoundaries() {
        long seed = Seeds.seed();
        System.out.println("PackerTest seed " + seed);
        Random rnd = new Random(seed);
        for (int round = 0; round < 20; round++) {
            int max = 8 + rnd.nextInt(60);
            int n = 1 + rnd.nextInt(60);
            int[] lengths = new int[n];
            for (int i = 0; i < n; i++) {
                lengths[i] = 1 + rnd.nextInt(max + 10); // some longer than a row
            }
            List<Example> ex = examples(lengths);
            List<Packer.Row> rows = Packer.pack(ex, max);
            List<Packer.Row> again = Packer.pack(ex, max);
            assertEquals(rows.size(), again.size());
            int[] seen = new int[n];
            int counted = 0;
            for (int r = 0; r < rows.size(); r++) {
                Packer.Row row = rows.get(r);
                assertArrayEquals(row.ids(), again.get(r).ids());
                assertArrayEquals(row.labels(), again.get(r).labels());
                assertArrayEquals(row.examples(), again.get(r).examples());
                assertTrue(row.length() <= max && row.length() > 0, "row " + r + " of " + row.length() + " tokens, limit " + max);
                int at = 0;
                for (int s = 0; s < row.examples().length; s++) {
                    Example e = ex.get(row.examples()[s]);
                    seen[row.examples()[s]]++;
                    int len = Math.min(e.length(), max);
                    for (int i = 0; i < len; i++) {
                        assertEquals(e.ids()[i], row.ids()[at + i]);
                        assertEquals(s, row.segments()[at + i]);
                        assertEquals(i, row.positions()[at + i]);
                        assertEquals(i == 0 ? Example.IGNORE : e.labels()[i], row.labels()[at + i], "label " + i + " of sample " + s);
                    }
                    counted += new Example(Arrays.copyOf(e.ids(), len), Arrays.copyOf(e.labels(), len)).countedTokens();
                    at += len;
                }
                assertEquals(row.length(), at);
                for (int later = r + 1; later < rows.size(); later++) {
                    int opener = Math.min(ex.get(rows.get(later).examples()[0]).length(), max);
                    assertTrue(max - row.length() < opener, "row " + later + "'s first example would have fit row " + r);
                }
            }
            int[] once = new int[n];
            Arrays.fill(once, 1);
            assertArrayEquals(once, seen, "every example exactly once");
            assertEquals(counted, rows.stream().mapToInt(Packer.Row::countedTokens).sum(), "counted tokens");
        }
    }
}
