package dev.jtune.train;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.engine.DType;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.loop.Batching;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --packing} and {@code --group_by_length} on the command line with a tiny model on the cpu (seconds). */
class PackingCliTest {
    @TempDir
    Path tmp;
    private Path model;
    private Path data;

    @BeforeEach
    void setUp() throws IOException {
        model = CliFixtures.base(tmp.resolve("model"), CliFixtures.tiny(), DType.F32, 3);
        CliFixtures.tinyTokenizer(model);
        data = CliFixtures.data(tmp.resolve("d.jsonl"), 12, "");
    }

    /** A short cpu run's flags, then {@code more}. */
    private String[] args(String out, String... more) {
        List<String> l = new ArrayList<>(List.of("--model_path", model.toString(), "--data_path", data.toString(),
                "--output_dir", tmp.resolve(out).toString(), "--max_steps", "3", "--per_device_train_batch_size", "2",
                "--learning_rate", "1e-2", "--report_to", "jsonl", "--save_strategy", "no", "--device", "cpu", "--logging_steps", "1"));
        l.addAll(List.of(more));
        return l.toArray(String[]::new);
    }

    private List<Double> losses(String out) throws IOException {
        List<Double> l = new ArrayList<>();
        for (JsonNode row : CliFixtures.metrics(tmp.resolve(out))) {
            if (row.has("loss")) {
                l.add(row.get("loss").asDouble());
            }
        }
        return l;
    }

    @Test
    void packingRunsEndToEnd() throws IOException {
        assertEquals(new Batching(Batching.Order.GROUP_BY_LENGTH, 64),
                TrainCommand.config(TrainArgs.parse(args("p", "--packing", "--max_seq_length", "64"))).batching());
        CliFixtures.Run r = CliFixtures.run(args("p", "--packing", "--max_seq_length", "64"));
        assertEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("packing: 12 examples in "), r.all());
        assertTrue(Files.exists(tmp.resolve("p").resolve("model.safetensors")), r.all());
        List<Double> packed = losses("p");
        assertEquals(3, packed.size(), r.all());
        assertTrue(packed.stream().allMatch(Double::isFinite), packed.toString());
        assertTrue(Files.readString(tmp.resolve("p").resolve("jtune_args.json")).contains("\"packing\" : true"), "saved arguments");
    }

    @Test
    void groupByLengthFalseChangesTheOrderReproducibly() throws IOException {
        assertEquals(Batching.Order.RANDOM, TrainCommand.config(TrainArgs.parse(args("a", "--group_by_length", "false"))).batching().order());
        for (String out : List.of("grouped", "random-1", "random-2")) {
            CliFixtures.Run r = CliFixtures.run(out.equals("grouped") ? args(out) : args(out, "--group_by_length", "false"));
            assertEquals(0, r.rc(), r.all());
        }
        assertEquals(losses("random-1"), losses("random-2"), "the same seed, the same order");
        assertNotEquals(losses("grouped"), losses("random-1"), "another order than length grouping's");
    }
}
