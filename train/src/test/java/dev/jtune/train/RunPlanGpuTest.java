package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.Device;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.model.Gemma3Model.Checkpointing;
import dev.jtune.train.args.CommandLine;
import dev.jtune.train.args.TrainArgs;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A run on the GPU plans against the device's free memory when {@code --max_memory} is absent, and runs the
 * planner's choice when a budget asks for checkpointing (a random 2-layer Gemma 3 of the full vocabulary, LoRA r4,
 * bf16, 2 x 2048 tokens planned).
 */
@Tag("gpu")
class RunPlanGpuTest {
    private final Cli cli = new Cli();

    private static String[] flags(Path model, Path data, Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("--model_path", model.toString(), "--data_path", data.toString(), "--output_dir", out.toString(),
                "--device", "cuda", "--bf16", "True", "--lora_enable", "True", "--freeze_llm", "True", "--lora_rank", "4", "--lora_alpha", "8",
                "--per_device_train_batch_size", "2", "--max_seq_length", "2048", "--logging_steps", "1", "--max_steps", "2"));
        a.addAll(Arrays.asList(extra));
        return a.toArray(String[]::new);
    }

    @Test
    void aGpuRunPlansAgainstTheFreeMemoryAndRunsTheChoice(@TempDir Path tmp) throws Exception {
        Path model = CliFixtures.smallModel(tmp.resolve("model"));
        Path data = CliFixtures.longData(tmp.resolve("d.jsonl"), 8, 2048); // cut to 2048: the plan is at --max_seq_length
        // no --max_memory: the device's free memory is the budget, and this small run fits it as given
        assertEquals(0, cli.run(flags(model, data, tmp.resolve("free"))), cli.all());
        System.out.print(cli.out());
        assertTrue(cli.out().contains("chosen: nothing to change: the configuration as given fits the device's free memory ("), cli.all());
        assertTrue(cli.out().contains("LoRA rank 4 in bf16"), cli.all());
        assertTrue(cli.out().contains("per-GPU resident (cuBLASLt workspace)"), cli.all());
        long free = CudaBackend.get(0).context().memoryInfo()[0];
        assertTrue(free > 0 && free <= CudaBackend.get(0).context().totalMemory(), Long.toString(free));

        // a budget between checkpointing's prediction and the step without it: the run checkpoints. The backend has
        // started already, so --max_memory's allocator cap (read at start) does not reach the other tests of this JVM.
        Path out = tmp.resolve("budget");
        CommandLine.Train t = (CommandLine.Train) CommandLine.parse(flags(model, data, out));
        Gemma3Config config = Gemma3Config.read(model);
        long none = bytes(config, t.args(), Checkpointing.NONE);
        long half = bytes(config, t.args(), Checkpointing.HALVES);
        long layer = bytes(config, t.args(), Checkpointing.LAYERS);
        long budget = (Math.min(half, layer) + none) / 2;
        System.out.printf("predicted: none %,d, half %,d, layer %,d; budget %,d%n", none, half, layer, budget);
        assertTrue(none > budget && Math.min(half, layer) <= budget, "checkpointing lowers the planned peak");
        String granularity = half <= budget ? "half" : "layer"; // half is the cheaper by the cost rule
        try {
            assertEquals(0, cli.run(flags(model, data, out, "--max_memory", Long.toString(budget))), cli.all());
        } finally {
            System.clearProperty("jtune.cuda.memoryLimit");
        }
        System.out.print(cli.out());
        assertTrue(cli.out().contains("chosen: --gradient_checkpointing"), cli.all());
        var saved = new ObjectMapper().readTree(Files.readString(out.resolve("jtune_args.json")));
        assertTrue(saved.get("gradient_checkpointing").asBoolean(), saved.toString());
        assertEquals(granularity, saved.get("checkpointing_granularity").asText());
    }

    private static long bytes(Gemma3Config config, TrainArgs a, Checkpointing c) {
        return MemoryPlanner.predict(config, a.with(new Planner.Knobs(c, false).flags()), Device.Kind.CUDA).deviceBytes();
    }
}
