package dev.jtune.train.args;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MemorySizeTest {
    @Test
    void decimalUnitsArePowersOf1000AndBinaryOnesOf1024() {
        assertEquals(16_000_000_000L, MemorySize.parse("16GB").bytes());
        assertEquals(16L << 30, MemorySize.parse("16GiB").bytes());
        assertEquals(512_000_000L, MemorySize.parse("512MB").bytes());
        assertEquals(512L << 20, MemorySize.parse("512MiB").bytes());
        assertEquals(64_000L, MemorySize.parse("64KB").bytes());
        assertEquals(64L << 10, MemorySize.parse("64KiB").bytes());
        assertEquals(2_000_000_000_000L, MemorySize.parse("2TB").bytes());
        assertEquals(2L << 40, MemorySize.parse("2TiB").bytes());
        assertEquals(1234567L, MemorySize.parse("1234567").bytes());
        assertEquals(100L, MemorySize.parse("100B").bytes());
    }

    @Test
    void theUnitInAnyCaseOptionallyAfterASpaceAndFractions() {
        assertEquals(16_000_000_000L, MemorySize.parse("16gb").bytes());
        assertEquals(16L << 30, MemorySize.parse("16 gib").bytes());
        assertEquals(16L << 30, MemorySize.parse("16GIB").bytes());
        assertEquals(1_500_000_000L, MemorySize.parse("1.5GB").bytes());
        assertEquals(3L << 29, MemorySize.parse("1.5GiB").bytes());
        assertEquals("16GB", MemorySize.parse(" 16GB ").text());
        assertEquals("16GB (14.90 GiB)", MemorySize.parse("16GB").describe());
    }

    @Test
    void anythingElseIsRefusedSayingWhatIsAccepted() {
        for (String bad : new String[] {"", "GB", "16G", "16 gigabytes", "-1GB", "16XB", "1.5", "0", "0GB", "16GB16", "1e9"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MemorySize.parse(bad), bad);
            assertTrue(e.getMessage().length() > 10, bad + ": " + e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> MemorySize.parse("99999999TiB"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> MemorySize.parse("16G")).getMessage()
                .contains("16GB = 16000000000 bytes"));
    }

    @Test
    void theFlagParsesItAndSavedArgumentsKeepTheSpelling() {
        TrainArgs a = ArgsParser.fromJson("{\"model_path\": \"m\", \"data_path\": \"d\", \"max_memory\": \"16GiB\"}", "test");
        assertEquals(16L << 30, a.maxMemory().bytes());
        assertEquals("16GiB", Flag.MAX_MEMORY.format(a.maxMemory()));
        assertEquals(null, TrainArgs.defaults().maxMemory());
        ArgsException e = assertThrows(ArgsException.class, () -> ArgsParser.fromJson("{\"model_path\": \"m\", \"data_path\": \"d\", \"max_memory\": \"16G\"}", "test"));
        assertTrue(e.getMessage().contains("--max_memory") && e.getMessage().contains("is not a memory size"), e.getMessage());
    }
}
