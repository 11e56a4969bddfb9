package dev.jtune.train.loop;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** {@link DataParallel#shareOf}: the ranks' shares (of eval batches) are disjoint, in order, and cover every item. */
class DataParallelShareTest {
    @Test
    void everyItemGoesToExactlyOneRankInOrder() {
        List<Integer> items = List.of(0, 1, 2, 3, 4, 5, 6);
        assertEquals(List.of(0, 3, 6), DataParallel.shareOf(items, 0, 3));
        assertEquals(List.of(1, 4), DataParallel.shareOf(items, 1, 3));
        assertEquals(List.of(2, 5), DataParallel.shareOf(items, 2, 3));
        for (int ranks = 1; ranks <= 9; ranks++) {
            List<Integer> all = new ArrayList<>();
            for (int r = 0; r < ranks; r++) {
                all.addAll(DataParallel.shareOf(items, r, ranks));
            }
            all.sort(null);
            assertEquals(items, all, ranks + " ranks");
        }
        assertEquals(List.of(), DataParallel.shareOf(List.of(1, 2), 2, 3), "more ranks than items: an empty share");
        assertThrows(IllegalArgumentException.class, () -> DataParallel.shareOf(items, 3, 3));
    }
}
