package dev.jtune.train;

import dev.jtune.train.CliFixtures.Run;
import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.jtune.train.CliFixtures.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every way of asking for help prints usage on stdout and exits 0. */
class HelpCommandsTest {
    private static void helps(String expected, String... args) {
        Run r = run(args);
        assertEquals(0, r.rc(), String.join(" ", args) + ": " + r.all());
        assertEquals("", r.err(), String.join(" ", args));
        assertTrue(r.out().contains(expected), String.join(" ", args) + " should print '" + expected + "': " + r.out());
    }

    @Test
    void theOverview() {
        for (List<String> args : List.of(List.of("help"), List.of("help", "help"), List.of("help", "--help"))) {
            helps("jtune help [COMMAND]", args.toArray(String[]::new));
        }
        Run r = run("help");
        for (String command : List.of("generate", "merge", "demo", "jtune help train")) {
            assertTrue(r.out().contains(command), command);
        }
    }

    @Test
    void theTrainingFlags() {
        for (List<String> args : List.of(List.of("--help"), List.of("-h"), List.of("help", "train"))) {
            helps("--learning_rate", args.toArray(String[]::new));
        }
        helps("jtune merge --adapter_path DIR --output_dir OUT", "--help"); // the other commands are listed after the flags
    }

    @Test
    void eachCommandsUsage() {
        helps("usage: jtune generate", "generate", "--help");
        helps("usage: jtune generate", "generate", "-h");
        helps("usage: jtune generate", "help", "generate");
        helps("usage: jtune generate", "generate", "--model_path", "x", "--help"); // anywhere on the line
        helps("--adapter_path DIR", "generate", "--help");
        helps("usage: jtune merge", "merge", "--help");
        helps("usage: jtune merge", "help", "merge");
        helps("--output_dir OUT", "merge", "--adapter_path", "--help");
        helps("usage: jtune demo [--size N]", "demo", "--help");
        helps("usage: jtune demo [--size N]", "help", "demo");
    }

    @Test
    void anUnknownCommandIsNamed() {
        Run r = run("help", "frobnicate");
        assertEquals(2, r.rc());
        assertTrue(r.err().contains("'frobnicate'") && r.err().contains("generate, merge"), r.all());
    }
}
