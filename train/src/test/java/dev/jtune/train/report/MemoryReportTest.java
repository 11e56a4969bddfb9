package dev.jtune.train.report;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.memory.MemoryStats;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MemoryReportTest {

    @Test
    void everyCategoryOnTheDeviceThenTheHost() {
        long g = 1L << 30;
        MemoryStats stats = new MemoryStats(3 * g, 4 * g, 5 * g, 6 * g, 10, 5, 2, 1,
                Map.of(MemoryCategory.WEIGHTS, g),
                Map.of(MemoryCategory.WEIGHTS, g, MemoryCategory.QUANTIZED_WEIGHTS, 2 * g, MemoryCategory.ADAPTERS, 3L,
                        MemoryCategory.GRADIENTS, 4 * g, MemoryCategory.OPTIMIZER, 5L, MemoryCategory.MASTER_WEIGHTS, 9L, MemoryCategory.ACTIVATIONS, 6L,
                        MemoryCategory.WORKSPACE, 7L),
                Map.of(),
                new MemoryStats.Host(12 * g, 13 * g, Map.of(MemoryCategory.OPTIMIZER, 8 * g, MemoryCategory.MASTER_WEIGHTS, 10L, MemoryCategory.GRADIENTS, g,
                        MemoryCategory.WEIGHTS, 3 * g)));
        Map<String, Long> b = MemoryReport.of(stats).bytes();
        assertEquals(g, b.get("weights_device"));
        assertEquals(2 * g, b.get("quantized_weights"));
        assertEquals(3L, b.get("adapters"));
        assertEquals(4 * g, b.get("gradients_device"));
        assertEquals(5L, b.get("optimizer_device"));
        assertEquals(6L, b.get("activations"));
        assertEquals(7L, b.get("workspace"));
        assertEquals(0L, b.get("other"));
        assertEquals(9L, b.get("master_weights_device"));
        assertEquals(10L, b.get("master_weights_host"));
        assertEquals(5 * g, b.get("device_peak"));
        assertEquals(8 * g, b.get("optimizer_host"));
        assertEquals(g, b.get("gradients_host"));
        assertEquals(3 * g, b.get("weights_host"));
        assertEquals(12 * g, b.get("pinned_host"));
        assertEquals(13 * g, b.get("pinned_host_peak"));
        String table = MemoryReport.of(stats).table();
        assertTrue(table.contains("optimizer (host)                  8.000  host"), table);
        assertTrue(table.contains("quantized weights                 2.000  device"), table);
        assertFalse(table.contains("other"), "zero rows are left out: " + table);
    }

    /** Where the allocator recorded what each category held at the device's peak, both tables show it beside the category's own peak. */
    @Test
    void theCategoriesAtTheDevicesPeakGoBesideTheirOwnPeaks() {
        long g = 1L << 30;
        MemoryStats stats = new MemoryStats(g, g, 3 * g, 3 * g, 4, 2, 1, 0,
                Map.of(MemoryCategory.WEIGHTS, g),
                Map.of(MemoryCategory.WEIGHTS, g, MemoryCategory.ACTIVATIONS, 2 * g, MemoryCategory.WORKSPACE, 2 * g),
                Map.of(MemoryCategory.WEIGHTS, g, MemoryCategory.WORKSPACE, 2 * g));
        String table = MemoryReport.of(stats).table();
        assertTrue(table.contains("where   at the peak"), table);
        assertTrue(table.matches("(?s).*\\nactivations +2\\.000  device +0\\.000\\R.*"), "its own peak came earlier: " + table);
        assertTrue(table.matches("(?s).*\\nworkspace +2\\.000  device +2\\.000\\R.*"), table);
        assertTrue(table.matches("(?s).*\\ndevice peak +3\\.000  device +3\\.000\\R.*"), table);
        String full = MemoryReport.planned(stats, 0, "resident").fullTable();
        assertTrue(full.contains("at the device peak"), full);
        assertTrue(full.contains("device peak, reserved"), full);
    }
}
