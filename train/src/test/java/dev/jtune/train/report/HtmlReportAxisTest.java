package dev.jtune.train.report;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Locale;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Axis ticks over many ranges and magnitudes: they cover the data, are round and evenly spaced, and read back. */
class HtmlReportAxisTest {

    @Test
    void ticksCoverTheRangeAreRoundAndTheirLabelsReadBack() {
        Random random = Seeds.random(7);
        int checked = 0;
        for (int i = 0; i < 2000; i++) {
            double magnitude = Math.pow(10, random.nextInt(-8, 9));
            double lo = (random.nextDouble() * 2 - 1) * magnitude;
            // spans from a sliver of the value (memory creeping up) to several times it
            double hi = lo + magnitude * Math.pow(10, random.nextDouble() * 3 - 2);
            boolean integers = magnitude >= 1 && random.nextBoolean();
            if (integers) {
                lo = Math.rint(lo);
                hi = Math.rint(hi);
            }
            check(Axis.covering(lo, hi, integers), lo, hi);
            checked++;
        }
        // a constant series and a single logged step still get an axis
        check(Axis.covering(2e-4, 2e-4, false), 2e-4, 2e-4);
        check(Axis.covering(0, 0, false), 0, 0);
        check(Axis.covering(7, 7, true), 7, 7);
        System.out.println(checked + " random ranges (1e-8 .. 1e8) and 3 flat ones: ticks cover, round, even, labels distinct and read back");
    }

    private static void check(Axis axis, double lo, double hi) {
        String what = String.format(Locale.ROOT, "[%s, %s]%s", lo, hi, axis.integers() ? " integers" : "");
        double[] ticks = axis.ticks();
        assertTrue(ticks[0] <= lo && ticks[ticks.length - 1] >= hi, what + ": ticks " + Arrays.toString(ticks) + " cover the data");
        HtmlReportTest.assertRoundAndEven(what, ticks);
        String[] labels = Arrays.stream(ticks).mapToObj(axis::label).toArray(String[]::new);
        assertEquals(labels.length, Arrays.stream(labels).distinct().count(), what + ": labels " + Arrays.toString(labels) + " are distinct");
        for (int i = 0; i < ticks.length; i++) {
            assertEquals(ticks[i], Double.parseDouble(labels[i]), axis.step() * 0.01, what + ": label " + labels[i]);
        }
    }
}
