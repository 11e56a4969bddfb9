package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.Device;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.model.Gemma3Model.Checkpointing;
import dev.jtune.train.args.CommandLine;
import dev.jtune.train.args.TrainArgs;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A run prints its memory plan before any weight is loaded and runs the planner's choice; on the cpu (no device
 * memory to read) it plans the configuration as given unless {@code --max_memory} sets a budget. The cpu run's plan
 * is of a cpu step (fp32, no per-GPU buffers). A random 2-layer Gemma 3 of the full vocabulary, LoRA r4.
 */
class RunPlanTest {
    @TempDir
    static Path shared;
    static Path model;
    static Path data;
    /** Records of ~20 tokens: a run that plans for them (their longest) and trains fast. */
    static Path shortData;
    private final Cli cli = new Cli();

    @BeforeAll
    static void modelAndData() throws IOException {
        model = CliFixtures.smallModel(shared.resolve("model"));
        // every record is cut to --max_seq_length (256), the length a run plans for (the data's longest, at most the
        // limit), so the plan here is the one at --max_seq_length
        data = CliFixtures.longData(shared.resolve("d.jsonl"), 8, 256);
        shortData = CliFixtures.data(shared.resolve("short.jsonl"), 8, "");
    }

    private static String[] flags(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("--model_path", model.toString(), "--data_path", data.toString(), "--output_dir", out.toString(),
                "--device", "cpu", "--lora_enable", "True", "--freeze_llm", "True", "--lora_rank", "4", "--lora_alpha", "8",
                "--per_device_train_batch_size", "2", "--max_seq_length", "256", "--logging_steps", "1", "--max_steps", "1"));
        a.addAll(Arrays.asList(extra));
        return a.toArray(String[]::new);
    }

    @Test
    void aRunPrintsItsPlanBeforeLoadingAndChoosesNothingWithoutABudget(@TempDir Path tmp) {
        String[] f = flags(tmp.resolve("o"));
        f[java.util.Arrays.asList(f).indexOf(data.toString())] = shortData.toString();
        assertEquals(0, cli.run(f), cli.all());
        String out = cli.out();
        int plan = out.indexOf("plan: ");
        int table = out.indexOf("memory                                                      bytes        GiB  where");
        int chosen = out.indexOf("chosen: nothing, the configuration as given (no --max_memory given, and no GPU to read free memory from");
        int loaded = out.indexOf("training ");
        assertTrue(plan >= 0 && table > plan && chosen > table, cli.all());
        assertTrue(loaded > chosen, "the plan comes before the weights load: " + cli.all());
        assertTrue(out.contains("LoRA rank 4 in fp32, 2 x 256 tokens per micro-batch, no gradient checkpointing"), cli.all());
        assertTrue(out.contains("per-GPU resident (none on the cpu)"), cli.all());
        assertTrue(out.contains("planned for the data's longest sequence"), "short records plan for their own length: " + cli.all());
        assertTrue(out.contains("done: loss"), "the run's own output follows as before: " + cli.all());
    }

    @Test
    void aBudgetOnlyCheckpointingMeetsIsMetByCheckpointingAndTheRunUsesIt(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("o");
        // the budget from the planner's own predictions of this run (a cpu step): the smaller checkpointing mode's bytes
        CommandLine.Train t = (CommandLine.Train) CommandLine.parse(flags(out));
        Gemma3Config config = Gemma3Config.read(model);
        long none = bytes(config, t.args(), Checkpointing.NONE);
        long half = bytes(config, t.args(), Checkpointing.HALVES);
        long layer = bytes(config, t.args(), Checkpointing.LAYERS);
        long budget = Math.min(half, layer);
        assertTrue(none > budget, "checkpointing lowers this step's peak: " + none + " vs " + half + ", " + layer);
        String expected = half <= layer ? "chosen: --gradient_checkpointing --checkpointing_granularity half" : "chosen: --gradient_checkpointing (";
        assertEquals(0, cli.run(flags(out, "--max_memory", Long.toString(budget))), cli.all());
        assertTrue(cli.out().contains(expected), cli.all());
        assertTrue(cli.out().contains("the fastest configuration that fits --max_memory " + budget), cli.all());
        assertTrue(cli.out().contains("LoRA rank 4 in fp32, 2 x 256 tokens per micro-batch, gradient checkpointing ("
                + (half <= layer ? "half" : "layer") + ")"), "the plan line describes the chosen run: " + cli.all());
        var saved = new ObjectMapper().readTree(Files.readString(out.resolve("jtune_args.json")));
        assertTrue(saved.get("gradient_checkpointing").asBoolean(), "the run used the choice: " + saved);
        assertEquals(half <= layer ? "half" : "layer", saved.get("checkpointing_granularity").asText());

        // the same budget with checkpointing off as given: refused before any weight is loaded, naming what would fit
        Path refused = tmp.resolve("refused");
        assertEquals(1, cli.run(flags(refused, "--max_memory", Long.toString(budget), "--gradient_checkpointing", "False")), cli.all());
        assertTrue(cli.err().contains("the step does not fit --max_memory " + budget), cli.all());
        assertTrue(cli.err().contains("Kept as given: --gradient_checkpointing False (command line)"), cli.all());
        assertTrue(cli.err().contains("What would fit, one change at a time: "), cli.all());
        assertFalse(cli.out().contains("training "), "no model was loaded: " + cli.all());
        assertFalse(Files.exists(refused.resolve("jtune_args.json")), cli.all());
    }

    private static long bytes(Gemma3Config config, TrainArgs a, Checkpointing c) {
        return MemoryPlanner.predict(config, a.with(new Planner.Knobs(c, false).flags()), Device.Kind.CPU).deviceBytes();
    }
}
