package dev.jtune.train.dist;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** torchrun's variables and a launcher's layout give each process its place; bad values are named. */
class DistEnvTest {
    @Test
    void noWorldSizeMeansNotAWorker() {
        assertTrue(DistEnv.fromEnvironment(Map.<String, String>of()::get).isEmpty());
    }

    @Test
    void torchrunVariables() {
        Map<String, String> env = Map.of("RANK", "5", "WORLD_SIZE", "8", "LOCAL_RANK", "1", "LOCAL_WORLD_SIZE", "4",
                "MASTER_ADDR", "10.0.0.7", "MASTER_PORT", "29600");
        DistEnv d = DistEnv.fromEnvironment(env::get).orElseThrow();
        assertEquals(new DistEnv(5, 8, 1, 4, "10.0.0.7", 29600), d);
        assertTrue(d.isDistributed());
        assertEquals(env, d.variables());
    }

    @Test
    void defaultsForOneMachine() {
        DistEnv d = DistEnv.fromEnvironment(Map.of("RANK", "1", "WORLD_SIZE", "2")::get).orElseThrow();
        assertEquals(new DistEnv(1, 2, 1, 2, "127.0.0.1", 29500), d);
    }

    @Test
    void badVariablesAreNamed() {
        Map<String, String> env = new HashMap<>(Map.of("WORLD_SIZE", "2"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DistEnv.fromEnvironment(env::get)).getMessage().contains("RANK is not set"));
        env.put("RANK", "two");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DistEnv.fromEnvironment(env::get)).getMessage().contains("RANK=two"));
        env.put("RANK", "2");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DistEnv.fromEnvironment(env::get)).getMessage().contains("rank 2 of 2"));
        env.put("RANK", "1");
        env.put("MASTER_PORT", "70000");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DistEnv.fromEnvironment(env::get)).getMessage().contains("70000"));
    }

    @Test
    void aLayoutNumbersRanksAsTorchrunDoes() {
        DistEnv.Layout node1 = new DistEnv.Layout(4, 2, 1, "10.0.0.7", 29500);
        assertEquals(8, node1.worldSize());
        assertEquals(new DistEnv(4, 8, 0, 4, "10.0.0.7", 29500), node1.worker(0));
        assertEquals(new DistEnv(7, 8, 3, 4, "10.0.0.7", 29500), node1.worker(3));
        assertFalse(new DistEnv.Layout(1, 1, 0, null, 29500).worker(0).isDistributed());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new DistEnv.Layout(2, 2, 0, null, 29500)).getMessage()
                .contains("needs --master_addr"));
        assertThrows(IllegalArgumentException.class, () -> new DistEnv.Layout(2, 2, 2, "h", 29500));
        assertThrows(IllegalArgumentException.class, () -> new DistEnv.Layout(0, 1, 0, null, 29500));
    }
}
