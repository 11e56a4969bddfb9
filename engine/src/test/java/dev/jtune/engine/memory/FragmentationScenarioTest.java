package dev.jtune.engine.memory;

import dev.jtune.engine.OutOfDeviceMemoryException;
import org.junit.jupiter.api.Test;

import static dev.jtune.engine.memory.AllocatorChecks.GIB;
import static dev.jtune.engine.memory.AllocatorChecks.MIB;
import static dev.jtune.engine.memory.AllocatorChecks.checkDeviceEmpty;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The reason expandable segments exist: plain segments run out of memory with most of the device unused. */
class FragmentationScenarioTest {

    @Test
    void plainSegmentsRunOutOfMemoryWellBelowCapacity() {
        SimulatedDeviceMemory device = new SimulatedDeviceMemory(GIB);
        CachingAllocator allocator = new CachingAllocator(device, Mode.PLAIN.config());

        OutOfDeviceMemoryException e = assertThrows(OutOfDeviceMemoryException.class, () -> FragmentationScenario.run(allocator));

        assertEquals(300 * MIB, e.requested());
        assertTrue(e.getMessage().contains("640.00 MiB allocated"), e.getMessage());
        assertTrue(e.getMessage().contains("fragmentation") && e.getMessage().contains("expandable segments"),
                "the hint names the cause and the cure: " + e.getMessage());
        assertEquals(0, allocator.stats().allocated(), "the scenario frees its blocks even when it fails");
        allocator.close();
        checkDeviceEmpty(device);
    }

    @Test
    void expandableSegmentsUnmapFreePagesAndSucceed() {
        SimulatedDeviceMemory device = new SimulatedDeviceMemory(GIB);
        CachingAllocator allocator = new CachingAllocator(device, Mode.EXPANDABLE.config());

        FragmentationScenario.Report report = FragmentationScenario.run(allocator);

        assertEquals(2 * MIB, report.unit());
        assertEquals(640 * MIB, report.liveAtLastRequest());
        assertEquals(300 * MIB, report.lastRequest());
        assertEquals(940 * MIB, report.statsAfterLastRequest().allocated());
        assertEquals(940 * MIB, report.statsAfterLastRequest().reserved(), "only pages under live blocks stay mapped");
        assertEquals(180, report.statsAfterLastRequest().deviceFrees(), "the pages of the ten free 36 MiB gaps were unmapped");
        assertEquals(0, allocator.stats().allocated());
        allocator.close();
        checkDeviceEmpty(device);
    }

    @Test
    void scenarioScalesToTheMemoryLimitOfABiggerDevice() {
        CachingAllocator plain = new CachingAllocator(new SimulatedDeviceMemory(8 * GIB), Mode.PLAIN.config(2 * GIB));
        CachingAllocator expandable = new CachingAllocator(new SimulatedDeviceMemory(8 * GIB), Mode.EXPANDABLE.config(2 * GIB));

        assertThrows(OutOfDeviceMemoryException.class, () -> FragmentationScenario.run(plain));
        FragmentationScenario.Report report = FragmentationScenario.run(expandable);

        assertEquals(4 * MIB, report.unit());
        assertTrue(expandable.stats().peakReserved() <= 2 * GIB);
    }

    @Test
    void scenarioRefusesBudgetsItCannotScaleTo() {
        CachingAllocator small = new CachingAllocator(new SimulatedDeviceMemory(512 * MIB), Mode.PLAIN.config());
        assertThrows(IllegalArgumentException.class, () -> FragmentationScenario.run(small));
    }
}
