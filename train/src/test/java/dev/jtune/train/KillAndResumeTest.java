package dev.jtune.train;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.gemma.lora.PeftAdapter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real jtune process killed with SIGKILL at three points of a run, then run again with the same command: the
 * resumed metrics.jsonl has every step exactly once with continuing counters, and the final adapter equals the
 * uninterrupted run's bit for bit. The points are reached through the test-only {@code -Djtune.test.pause} hook
 * (the process stops there and waits to be killed), so the kill lands exactly where the test says.
 */
class KillAndResumeTest {
    private static final int STEPS = 6;
    @TempDir
    static Path shared;
    static Path model;
    static Path data;

    @BeforeAll
    static void modelAndData() throws IOException {
        model = CliFixtures.smallModel(shared.resolve("model"));
        data = CliFixtures.data(shared.resolve("d.jsonl"), 8, "");
    }

    private static List<String> command(Path out, String pause) {
        List<String> c = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED"));
        if (pause != null) {
            c.add("-Djtune.test.pause=" + pause);
        }
        c.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "--model_path", model.toString(), "--data_path", data.toString(), "--output_dir", out.toString(), "--device", "cpu",
                "--lora_enable", "True", "--freeze_llm", "True", "--lora_rank", "4", "--lora_alpha", "8", "--bits", "4",
                "--per_device_train_batch_size", "2", "--logging_steps", "1", "--save_steps", "2", "--learning_rate", "1e-3",
                "--max_steps", Integer.toString(STEPS)));
        return c;
    }

    /** Runs to the end; returns what it printed. */
    private static String runToEnd(Path out) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command(out, null)).redirectErrorStream(true).start();
        String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "finishes");
        assertEquals(0, p.exitValue(), text);
        return text;
    }

    /** Starts a run that pauses at {@code point}, waits until it is there, and kills it with SIGKILL. */
    private static void killAt(Path out, String point) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command(out, point)).redirectErrorStream(true).start();
        StringBuilder seen = new StringBuilder();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                seen.append(line).append('\n');
                if (line.contains("jtune: paused at " + point)) {
                    p.destroyForcibly(); // SIGKILL on Unix: no shutdown hooks, no finally blocks
                    break;
                }
            }
        }
        assertTrue(p.waitFor(1, TimeUnit.MINUTES), "killed");
        assertTrue(seen.toString().contains("paused at " + point), "the run reached " + point + ":\n" + seen);
        assertEquals(137, p.exitValue(), "SIGKILL");
    }


    @Test
    void killedAtThreePointsTheResumedRunEqualsTheUninterruptedOne(@TempDir Path tmp) throws Exception {
        Path whole = tmp.resolve("whole");
        runToEnd(whole);
        byte[] adapter = Files.readAllBytes(whole.resolve(PeftAdapter.WEIGHTS_FILE));
        List<JsonNode> expected = CliFixtures.metrics(whole);
        assertEquals(STEPS, expected.size());
        for (String point : List.of("after-log:3", "in-checkpoint:4", "after-final")) {
            Path out = tmp.resolve(point.replace(':', '-'));
            killAt(out, point);
            if (point.startsWith("in-checkpoint")) {
                try (Stream<Path> s = Files.list(out)) {
                    assertTrue(s.anyMatch(p -> p.getFileName().toString().startsWith(".tmp-checkpoint-4")),
                            "killed while checkpoint-4 was half written");
                }
                assertTrue(!Files.exists(out.resolve("checkpoint-4")), "a half-written checkpoint never appears under its name");
            }
            String resumed = runToEnd(out);
            List<JsonNode> got = CliFixtures.metrics(out);
            assertEquals(expected.size(), got.size(), point + ": every step exactly once\n" + resumed);
            for (int i = 0; i < got.size(); i++) {
                assertEquals(i + 1, got.get(i).get("step").asLong(), point);
                assertEquals(expected.get(i).get("loss").asDouble(), got.get(i).get("loss").asDouble(), 0.0, point + " loss at step " + (i + 1));
                assertEquals(expected.get(i).get("num_input_tokens_seen").asLong(), got.get(i).get("num_input_tokens_seen").asLong(),
                        point + ": cumulative tokens continue");
            }
            assertArrayEquals(adapter, Files.readAllBytes(out.resolve(PeftAdapter.WEIGHTS_FILE)), point + ": the final adapter, bit for bit");
            System.out.println("killed at " + point + ", resumed: " + resumed.lines().filter(l -> l.contains("resumed") || l.contains("done")).toList());
        }
    }
}
