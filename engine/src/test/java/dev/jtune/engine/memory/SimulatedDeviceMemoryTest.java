package dev.jtune.engine.memory;

import org.junit.jupiter.api.Test;

import static dev.jtune.engine.memory.AllocatorChecks.MIB;
import static dev.jtune.engine.memory.AllocatorChecks.checkDeviceEmpty;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SimulatedDeviceMemoryTest {
    private static final long PAGE = 2 * MIB;
    private final SimulatedDeviceMemory device = new SimulatedDeviceMemory(64 * MIB);

    @Test
    void mallocIsLimitedByCapacityAndHandsOutDistinctAlignedAddresses() {
        long a = device.malloc(40 * MIB);
        long b = device.malloc(20 * MIB);
        assertNotEquals(0, a);
        assertTrue(b >= a + 40 * MIB, "ranges do not overlap");
        assertEquals(0, a % PAGE);
        assertEquals(0, device.malloc(5 * MIB), "only 4 MiB left");
        assertEquals(4 * MIB, device.free());
        device.free(a);
        assertEquals(44 * MIB, device.free());
        device.free(b);
        assertEquals(3, device.calls().malloc());
        assertEquals(2, device.calls().free());
        checkDeviceEmpty(device);
    }

    @Test
    void freeingTwiceOrAnUnknownAddressThrows() {
        long a = device.malloc(MIB);
        device.free(a);
        assertThrows(IllegalStateException.class, () -> device.free(a));
        assertThrows(IllegalStateException.class, () -> device.free(12345));
    }

    @Test
    void virtualMemoryLifecycleMapsAccessesAndGivesBack() {
        long range = device.reserve(8 * PAGE);
        long h1 = device.createPhysical(PAGE);
        long h2 = device.createPhysical(PAGE);
        device.map(range, PAGE, h1);
        device.map(range + PAGE, PAGE, h2);
        assertThrows(IllegalStateException.class, () -> device.checkAccessible(range, PAGE), "mapped but no access yet");
        device.setAccess(range, 2 * PAGE);
        device.checkAccessible(range + 100, 2 * PAGE - 200);
        assertThrows(IllegalStateException.class, () -> device.checkAccessible(range, 3 * PAGE), "third page unmapped");
        assertEquals(4 * MIB, device.used());
        assertEquals(4 * MIB, device.mappedBytes());

        device.unmap(range, 2 * PAGE);
        device.releasePhysical(h1);
        device.releasePhysical(h2);
        device.unreserve(range, 8 * PAGE);
        checkDeviceEmpty(device);
    }

    @Test
    void createPhysicalIsLimitedByCapacity() {
        for (int i = 0; i < 32; i++) {
            assertNotEquals(0, device.createPhysical(PAGE));
        }
        assertEquals(0, device.createPhysical(PAGE));
        assertEquals(0, device.free());
    }

    @Test
    void virtualMemoryMisuseThrows() {
        long range = device.reserve(4 * PAGE);
        long h = device.createPhysical(PAGE);
        long big = device.createPhysical(2 * PAGE);
        assertThrows(IllegalStateException.class, () -> device.map(range, PAGE, big), "handle size mismatch");
        device.map(range, PAGE, h);
        long other = device.createPhysical(PAGE);
        assertThrows(IllegalStateException.class, () -> device.map(range, PAGE, other), "map over a mapping");
        assertThrows(IllegalStateException.class, () -> device.map(range + PAGE, PAGE, h), "handle mapped twice");
        assertThrows(IllegalStateException.class, () -> device.map(range + 8 * PAGE, PAGE, other), "outside the reservation");
        assertThrows(IllegalStateException.class, () -> device.unmap(range + PAGE, PAGE), "unmap of unmapped");
        assertThrows(IllegalStateException.class, () -> device.setAccess(range + PAGE, PAGE), "access to unmapped");
        assertThrows(IllegalStateException.class, () -> device.releasePhysical(h), "release of a mapped handle");
        assertThrows(IllegalStateException.class, () -> device.unreserve(range, 4 * PAGE), "unreserve with mappings inside");
        assertThrows(IllegalStateException.class, () -> device.unreserve(range, 2 * PAGE), "unreserve of part of a range");
        assertThrows(IllegalArgumentException.class, () -> device.map(range + 4096, PAGE, other), "misaligned");
        assertThrows(IllegalArgumentException.class, () -> device.createPhysical(PAGE + 1), "not whole pages");
        assertThrows(IllegalArgumentException.class, () -> device.reserve(100), "not whole pages");

        device.map(range + 2 * PAGE, 2 * PAGE, big);
        assertThrows(IllegalStateException.class, () -> device.unmap(range + 2 * PAGE, PAGE), "part of a mapping");
        device.unmap(range, PAGE);
        device.unmap(range + 2 * PAGE, 2 * PAGE);
        device.releasePhysical(h);
        assertThrows(IllegalStateException.class, () -> device.releasePhysical(h), "double release");
        device.releasePhysical(big);
        device.releasePhysical(other);
        device.unreserve(range, 4 * PAGE);
        checkDeviceEmpty(device);
    }

    @Test
    void deviceWithoutVirtualMemoryRefusesItsOperations() {
        SimulatedDeviceMemory plain = new SimulatedDeviceMemory(64 * MIB, PAGE, SimulatedDeviceMemory.VirtualMemory.UNSUPPORTED);
        assertTrue(!plain.supportsVirtualMemory());
        assertThrows(UnsupportedOperationException.class, () -> plain.reserve(PAGE));
        assertThrows(UnsupportedOperationException.class, () -> plain.createPhysical(PAGE));
    }
}
