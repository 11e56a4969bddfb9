package dev.jtune.train;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.engine.io.FileTrees;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.train.loop.CheckpointStore;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The output-directory contract, resume, metrics integrity, the NaN guard and errors with causes, each as the
 * command line meets them (issue 10's reproductions, on the cpu with a random 2-layer Gemma 3 of the full vocabulary).
 */
class RunContractTest {
    @TempDir
    static Path shared;
    static Path model;
    static Path data;
    private final Cli cli = new Cli();

    @BeforeAll
    static void modelAndData() throws IOException {
        model = CliFixtures.smallModel(shared.resolve("model"));
        data = CliFixtures.data(shared.resolve("d.jsonl"), 8, "");
    }

    /** A short LoRA run's flags; {@code extra} adds or overrides. */
    private static String[] flags(Path out, int steps, String... extra) {
        List<String> a = new ArrayList<>(List.of("--model_path", model.toString(), "--data_path", data.toString(), "--output_dir", out.toString(),
                "--device", "cpu", "--lora_enable", "True", "--freeze_llm", "True", "--lora_rank", "4", "--lora_alpha", "8",
                "--per_device_train_batch_size", "2", "--logging_steps", "1", "--save_steps", "2", "--learning_rate", "1e-3",
                "--max_steps", Integer.toString(steps)));
        a.addAll(Arrays.asList(extra));
        return a.toArray(String[]::new);
    }


    private static List<Long> steps(Path out) throws IOException {
        return CliFixtures.metrics(out).stream().map(n -> n.get("step").asLong()).toList();
    }

    private static List<String> checkpoints(Path out) throws IOException {
        try (Stream<Path> s = Files.list(out)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("checkpoint-")).sorted().toList();
        }
    }

    @Test
    void staleCheckpointsNeverWinOverAnOverwrittenRun(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("out");
        assertEquals(0, cli.run(flags(out, 8)), cli.all());
        assertEquals(List.of("checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-8"), checkpoints(out));
        assertEquals(0, cli.run(flags(out, 4, "--overwrite_output_dir", "True")), cli.all());
        assertTrue(cli.out().contains("removed the earlier run's"), cli.all());
        assertEquals(List.of("checkpoint-2", "checkpoint-4"), checkpoints(out), "the first run's checkpoints are gone");
        assertEquals(List.of(1L, 2L, 3L, 4L), steps(out));
        assertEquals(0, cli.run(flags(out, 6)), cli.all());
        assertTrue(cli.out().contains("checkpoint-4 at step 4"), "resumes the overwritten run, not the stale one: " + cli.all());
        assertTrue(cli.out().contains("no longer bit-exact"), cli.all());
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), steps(out), "every step once");
        System.out.println("stale checkpoints: resumed at 4, steps " + steps(out));
    }

    @Test
    void aFinishedRunRerunInPlaceSaysSoAndDoesNothing(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("out");
        assertEquals(0, cli.run(flags(out, 3)), cli.all());
        assertEquals(List.of("checkpoint-2", "checkpoint-3"), checkpoints(out), "the final step is checkpointed");
        byte[] adapter = Files.readAllBytes(out.resolve(PeftAdapter.WEIGHTS_FILE));
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertEquals(0, cli.run(flags(out, 3)), cli.all());
        assertTrue(cli.out().contains("finished at step 3") && cli.out().contains("nothing to do"), cli.all());
        assertEquals(lines, Files.readAllLines(out.resolve("metrics.jsonl")), "metrics untouched");
        assertArrayEquals(adapter, Files.readAllBytes(out.resolve(PeftAdapter.WEIGHTS_FILE)), "adapter untouched");
    }

    /**
     * HF's {@code --save_only_model}: checkpoints hold the weights but no optimizer state; the finished run rerun in
     * place still says so and does nothing, and continuing it (a larger {@code --max_steps}) is refused, naming the flag
     * and the ways out, with nothing written.
     */
    @Test
    void saveOnlyModelCheckpointsHoldNoOptimizerStateAndCannotBeContinued(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("out");
        assertEquals(0, cli.run(flags(out, 3, "--save_only_model", "True")), cli.all());
        assertEquals(List.of("checkpoint-2", "checkpoint-3"), checkpoints(out));
        for (String c : checkpoints(out)) {
            assertTrue(Files.isRegularFile(out.resolve(c).resolve(PeftAdapter.WEIGHTS_FILE)), c + " holds the adapter");
            assertTrue(!Files.exists(out.resolve(c).resolve(dev.jtune.train.loop.CheckpointStore.OPTIMIZER_FILE)), c + " holds no optimizer state");
        }
        assertEquals(0, cli.run(flags(out, 3, "--save_only_model", "True")), cli.all());
        assertTrue(cli.out().contains("nothing to do"), cli.all());
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertTrue(cli.run(flags(out, 5, "--save_only_model", "True")) != 0, "continuing without optimizer state: " + cli.all());
        assertTrue(cli.all().contains("--save_only_model") && cli.all().contains("--overwrite_output_dir"), cli.all());
        assertEquals(lines, Files.readAllLines(out.resolve("metrics.jsonl")), "metrics untouched");
        assertEquals(List.of("checkpoint-2", "checkpoint-3"), checkpoints(out), "no checkpoint written");
    }

    @Test
    void aDifferentRunInTheSameDirectoryIsRefusedNamingWhatDiffersAndTheWaysOut(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("out");
        assertEquals(0, cli.run(flags(out, 3)), cli.all());
        byte[] adapter = Files.readAllBytes(out.resolve(PeftAdapter.WEIGHTS_FILE));
        assertEquals(1, cli.run(flags(out, 5, "--lora_rank", "8")));
        String msg = cli.err();
        assertTrue(msg.contains("lora: rank 4") && msg.contains("rank 8") && msg.contains("--overwrite_output_dir") && msg.contains("another --output_dir"), msg);
        assertArrayEquals(adapter, Files.readAllBytes(out.resolve(PeftAdapter.WEIGHTS_FILE)), "nothing written");
        Path otherData = CliFixtures.data(tmp.resolve("other.jsonl"), 8, " Please.");
        List<String> a = new ArrayList<>(Arrays.asList(flags(out, 5)));
        a.set(a.indexOf("--data_path") + 1, otherData.toString());
        assertEquals(1, cli.run(a.toArray(String[]::new)));
        assertTrue(cli.err().contains("data: "), "changed data is refused: " + cli.err());
        assertEquals(0, cli.run(flags(out, 5, "--learning_rate", "2e-3", "--logging_steps", "2")), cli.all());
        assertTrue(cli.out().contains("learning_rate: 0.001 in the checkpoint, 0.002 now") && cli.out().contains("logging_steps"),
                "adjustable settings warn and continue: " + cli.out());
    }

    @Test
    void resumeRewritesMetricsFromTheCheckpointAndCountersContinue(@TempDir Path tmp) throws IOException {
        Path whole = tmp.resolve("whole");
        assertEquals(0, cli.run(flags(whole, 6)), cli.all());
        Path cut = tmp.resolve("cut");
        assertEquals(0, cli.run(flags(cut, 6)), cli.all());
        // as if killed after step 5's log line: the newest checkpoint is step 4, metrics.jsonl already holds step 5
        FileTrees.deleteTree(cut.resolve("checkpoint-6"));
        List<String> lines = Files.readAllLines(cut.resolve("metrics.jsonl"));
        Files.write(cut.resolve("metrics.jsonl"), lines.subList(0, 5));
        assertEquals(0, cli.run(flags(cut, 6)), cli.all());
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), steps(cut));
        List<JsonNode> a = CliFixtures.metrics(whole);
        List<JsonNode> b = CliFixtures.metrics(cut);
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).get("loss").asDouble(), b.get(i).get("loss").asDouble(), 0.0, "loss at step " + (i + 1));
            assertEquals(a.get(i).get("num_input_tokens_seen").asLong(), b.get(i).get("num_input_tokens_seen").asLong(), "cumulative tokens continue");
        }
        assertArrayEquals(Files.readAllBytes(whole.resolve(PeftAdapter.WEIGHTS_FILE)), Files.readAllBytes(cut.resolve(PeftAdapter.WEIGHTS_FILE)));
    }

    @Test
    void nonFiniteStepsSkipTheUpdateAndStopTheRunWithAHint(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("out");
        int rc = cli.run(flags(out, 12, "--learning_rate", "1e6", "--max_grad_norm", "0", "--lr_scheduler_type", "constant"));
        assertEquals(1, rc, cli.all());
        assertTrue(cli.err().contains("not finite for 3 steps in a row") && cli.err().contains("--learning_rate")
                && cli.err().contains("--max_nonfinite_steps"), cli.err());
        for (JsonNode row : CliFixtures.metrics(out)) {
            for (String k : List.of("loss", "grad_norm", "learning_rate")) {
                assertTrue(row.get(k).isNumber() || row.get(k).isNull(), k + " is a number or null: " + row);
            }
            assertTrue(row.get("grad_norm").isNull() || row.get("grad_norm").asDouble() >= 0, "the norm is measured without clipping: " + row);
        }
        assertTrue(CliFixtures.metrics(out).stream().anyMatch(r -> r.get("skipped_steps").asLong() > 0), "skipped steps are counted");
        assertFalse(Files.exists(out.resolve(PeftAdapter.WEIGHTS_FILE)), "no final adapter from a diverged run");
        for (String c : checkpoints(out)) {
            CheckpointStore.validate(out.resolve(c)); // every checkpoint left holds finite weights
        }
        assertTrue(Files.readString(out.resolve("report.html")).contains("stopped"), "the report is written on the error too");
        System.out.println("diverged run: " + cli.err().strip());
    }

    @Test
    void damagedCheckpointsAreNamedWithTheNewestValidOne(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("out");
        assertEquals(0, cli.run(flags(out, 4, "--save_steps", "1")), cli.all());
        // same size, other bytes: only the checksum can tell
        Path weights = out.resolve("checkpoint-4").resolve(PeftAdapter.WEIGHTS_FILE);
        byte[] b = Files.readAllBytes(weights);
        b[b.length - 3] ^= 0x5a;
        Files.write(weights, b);
        assertEquals(1, cli.run(flags(out, 6)));
        assertTrue(cli.err().contains("CRC32C") && cli.err().contains("--resume_from_checkpoint " + out.resolve("checkpoint-3")), cli.err());
        // a truncated trainer_state.json in the newest, a missing one in the next
        Files.writeString(out.resolve("checkpoint-3").resolve(CheckpointStore.STATE_FILE), "{\"global_st");
        Files.delete(out.resolve("checkpoint-2").resolve(CheckpointStore.STATE_FILE));
        assertEquals(1, cli.run(flags(out, 6, "--resume_from_checkpoint", out.resolve("checkpoint-3").toString())));
        assertTrue(cli.err().contains(CheckpointStore.STATE_FILE), "names the file: " + cli.err());
        assertEquals(1, cli.run(flags(out, 6)));
        assertTrue(cli.err().contains("checkpoint-1"), "checkpoint-1 is the newest valid one: " + cli.err());
        assertEquals(1, cli.run(flags(out, 6, "--resume_from_checkpoint", model.toString())));
        assertTrue(cli.err().contains("not a jtune checkpoint") && cli.err().contains("model directory"), cli.err());
        assertEquals(0, cli.run(flags(out, 6, "--resume_from_checkpoint", out.resolve("checkpoint-1").toString())), cli.all());
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), steps(out));
    }

    @Test
    void outputDirectoriesThatCannotHoldARunAreRefusedBeforeLoading(@TempDir Path tmp) throws IOException {
        Path file = Files.writeString(tmp.resolve("a-file"), "x");
        assertEquals(1, cli.run(flags(file, 2)));
        assertTrue(cli.err().contains("is an existing file") && !cli.out().contains("examples"), "before the data: " + cli.all());
        assertEquals(1, cli.run(flags(model, 2)));
        assertTrue(cli.err().contains("is --model_path") || cli.err().contains(" is --model_path"), cli.err());
        assertEquals(1, cli.run(flags(shared, 2)));
        assertTrue(cli.err().contains("contains --model_path"), cli.err());
    }

    @Test
    void aBadRecordNamesTheSkipFlag(@TempDir Path tmp) throws IOException {
        Path bad = Files.writeString(tmp.resolve("bad.jsonl"), Files.readString(data) + "{\"conversations\": [{\"from\": \"robot\", \"value\": \"hi\"}]}\n");
        List<String> a = new ArrayList<>(Arrays.asList(flags(tmp.resolve("o"), 2)));
        a.set(a.indexOf("--data_path") + 1, bad.toString());
        assertEquals(1, cli.run(a.toArray(String[]::new)));
        assertTrue(cli.err().contains("record 8") && cli.err().contains("--skip_bad_records"), cli.err());
    }

    @Test
    void flagsThatChangeNothingOnThisRunSaySo(@TempDir Path tmp) {
        assertEquals(0, cli.run(flags(tmp.resolve("o"), 1, "--bf16", "True", "--dataloader_num_workers", "2")), cli.all());
        assertTrue(cli.out().contains("--bf16 on the cpu") && cli.out().contains("--dataloader_num_workers 2 does nothing"), cli.all());
    }

    @Test
    void loraWeightPathStartsFromAnExistingAdapter(@TempDir Path tmp) throws IOException {
        Path first = tmp.resolve("first");
        assertEquals(0, cli.run(flags(first, 2)), cli.all());
        Path second = tmp.resolve("second");
        // learning rate 0: the update changes nothing, so the adapter written is the one started from
        assertEquals(0, cli.run(flags(second, 1, "--lora_weight_path", first.toString(), "--learning_rate", "0")), cli.all());
        assertTrue(cli.out().contains("LoRA starts from the adapter in"), cli.all());
        assertArrayEquals(Files.readAllBytes(first.resolve(PeftAdapter.WEIGHTS_FILE)), Files.readAllBytes(second.resolve(PeftAdapter.WEIGHTS_FILE)));
        assertEquals(1, cli.run(flags(tmp.resolve("third"), 1, "--lora_weight_path", first.toString(), "--lora_rank", "8")));
        assertTrue(cli.err().contains("rank 4 where --lora_rank is 8"), cli.err());
    }
}
