package dev.jtune.train;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MainTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... args) {
        return Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void theDemoRunsOnTheCpuAndListsIt() {
        assertEquals(0, run("demo", "--size", "24"), err.toString());
        String text = out.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("cpu"), text);
        assertTrue(text.contains("[24 x 24] @ [24 x 24]"), text);
        assertTrue(text.matches("(?s).*cpu\\s+[0-9.]+ ms.*relative difference to cpu 0\\.00e\\+00.*"), text);
    }

    @Test
    void helpListsTheOptions() {
        assertEquals(0, run("--help"));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("--size"));
    }

    @Test
    void badArgumentsAreNamed() {
        assertEquals(2, run("--frobnicate"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--frobnicate"));
        assertEquals(2, run("demo", "--size", "zero"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("'zero'"));
    }
}
