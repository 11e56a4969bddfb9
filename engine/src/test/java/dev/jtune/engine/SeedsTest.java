package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;
import org.opentest4j.TestAbortedException;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The extension that names a failing randomized test's seeds, and replaying them. */
class SeedsTest {
    @Test
    void aFailureNamesTheSeedsItsTestDrewAndHowToReplayThem() {
        Seeds seeds = new Seeds();
        seeds.afterEach(null); // forget what this test's own setup drew
        Random fixed = Seeds.random(5);
        long fresh = Seeds.seed();
        AssertionError boom = new AssertionError("expected 1 but was 2");
        AssertionError named = assertThrows(AssertionError.class, () -> seeds.handleTestExecutionException(null, boom));
        assertEquals("expected 1 but was 2 [random seeds 5 (fixed), " + fresh + "; replay the fresh ones with -Djtune.test.seed="
                + fresh + "]", named.getMessage());
        assertSame(boom, named.getCause());
        assertEquals(new Random(5).nextLong(), fixed.nextLong());
        TestAbortedException skipped = new TestAbortedException("no GPU");
        assertSame(skipped, assertThrows(TestAbortedException.class, () -> seeds.handleTestExecutionException(null, skipped)),
                "an aborted test stays aborted");
        seeds.afterEach(null);
        RuntimeException plain = new IllegalStateException("no seeds drawn");
        assertSame(plain, assertThrows(IllegalStateException.class, () -> seeds.handleTestExecutionException(null, plain)),
                "a test without seeds fails as it is");
    }

    @Test
    void theReplayPropertyGivesTheFreshSeedsInOrder() {
        String before = System.getProperty(Seeds.REPLAY);
        Seeds seeds = new Seeds();
        try {
            System.setProperty(Seeds.REPLAY, "42, 43");
            seeds.afterEach(null);
            assertEquals(42, Seeds.seed());
            assertEquals(new Random(43).nextInt(), Seeds.random().nextInt());
            long third = Seeds.seed();
            assertTrue(third != 42 && third != 43, "after the replayed ones, fresh seeds again");
        } finally {
            if (before == null) {
                System.clearProperty(Seeds.REPLAY);
            } else {
                System.setProperty(Seeds.REPLAY, before);
            }
            seeds.afterEach(null);
        }
    }
}
