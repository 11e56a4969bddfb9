package dev.jtune.train.args;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Which settings the user set, by any origin (command line, {@code --config}, {@code --preset}, {@code --deepspeed}):
 * what the memory planner must leave alone. The rest keep their defaults and are not "given".
 */
class GivenFlagsTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    @Test
    void theCommandLineGivesWhatItNamesEvenAtTheDefaultValue() {
        GivenFlags g = fx.train("--gradient_checkpointing", "False", "--learning-rate", "1e-4", "--model_max_length", "512").given();
        assertTrue(g.contains(Flag.GRADIENT_CHECKPOINTING), "false, the default, said explicitly is a choice");
        assertTrue(g.contains(Flag.LEARNING_RATE), "dashes for underscores");
        assertTrue(g.contains(Flag.MAX_SEQ_LENGTH), "an alias");
        assertEquals("command line", g.origin(Flag.GRADIENT_CHECKPOINTING));
        // what was not named is open, though it has a value
        assertFalse(g.contains(Flag.OFFLOAD_OPTIMIZER));
        assertFalse(g.contains(Flag.CHECKPOINTING_GRANULARITY));
        assertNull(g.origin(Flag.OFFLOAD_OPTIMIZER));
        // the minimum a run needs is given too (Fixture adds it)
        assertTrue(g.flags().containsAll(Set.of(Flag.MODEL_PATH, Flag.DATA_PATH, Flag.OUTPUT_DIR)), g.flags().toString());
    }

    @Test
    void aNegatedBooleanIsGiven() {
        GivenFlags g = fx.train("--no_double_quant").given();
        assertTrue(g.contains(Flag.DOUBLE_QUANT));
        assertFalse(fx.train().given().contains(Flag.DOUBLE_QUANT));
    }

    @Test
    void aConfigFileGivesItsKeysAndTheCommandLineTakesOver() {
        Path config = Fixture.write(tmp.resolve("c.json"), """
                {"gradient_checkpointing": true, "checkpointing_granularity": "half", "seed": 5}
                """);
        GivenFlags g = fx.train("--config", config.toString(), "--seed", "9").given();
        assertEquals("config file " + config, g.origin(Flag.GRADIENT_CHECKPOINTING));
        assertEquals("config file " + config, g.origin(Flag.CHECKPOINTING_GRANULARITY));
        assertEquals("command line", g.origin(Flag.SEED), "the last assignment is the origin");
        assertEquals("command line", g.origin(Flag.CONFIG));
        assertFalse(g.contains(Flag.OFFLOAD_OPTIMIZER));
    }

    @Test
    void aPresetGivesItsValues() {
        GivenFlags g = fx.train("--preset", "memory_optimized").given();
        for (Flag f : Set.of(Flag.GRADIENT_CHECKPOINTING, Flag.BITS, Flag.LORA_RANK, Flag.MAX_SEQ_LENGTH, Flag.GRADIENT_ACCUMULATION_STEPS)) {
            assertEquals("preset memory_optimized", g.origin(f), f.cli());
        }
        // the preset sets checkpointing on, not its granularity, nor the optimizer's placement: those stay open
        assertFalse(g.contains(Flag.CHECKPOINTING_GRANULARITY));
        assertFalse(g.contains(Flag.OFFLOAD_OPTIMIZER));
        // a preset named by a config file, the command line over one of its values
        Path config = Fixture.write(tmp.resolve("p.json"), """
                {"preset": "extreme_memory_optimized"}
                """);
        GivenFlags h = fx.train("--config", config.toString(), "--lora_rank", "4").given();
        assertEquals("preset extreme_memory_optimized", h.origin(Flag.GRADIENT_CHECKPOINTING));
        assertEquals("config file " + config, h.origin(Flag.PRESET));
        assertEquals("command line", h.origin(Flag.LORA_RANK));
    }

    @Test
    void aDeepSpeedConfigGivesWhatItDecides() {
        String offload = """
                {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}, "gradient_accumulation_steps": 1,
                 "train_micro_batch_size_per_gpu": "auto", "optimizer": {"type": "AdamW", "params": {"lr": "auto"}},
                 "gradient_clipping": "auto",
                 "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": "auto", "warmup_num_steps": "auto",
                               "warmup_type": "linear"}}}""";
        CommandLine.Train t = fx.train("--deepspeed", offload, "--learning_rate", "1e-3", "--warmup_ratio", "0");
        GivenFlags g = t.given();
        assertEquals(OffloadOptimizer.CPU, t.args().offloadOptimizer());
        assertEquals("inline deepspeed config", g.origin(Flag.OFFLOAD_OPTIMIZER), "offload_optimizer.device cpu is --offload_optimizer cpu");
        assertEquals("inline deepspeed config", g.origin(Flag.OPTIM), "its optimizer block stands for --optim");
        assertEquals("inline deepspeed config", g.origin(Flag.LR_SCHEDULER_TYPE));
        assertEquals("inline deepspeed config", g.origin(Flag.GRADIENT_ACCUMULATION_STEPS), "a number pins the flag");
        assertFalse(g.contains(Flag.PER_DEVICE_TRAIN_BATCH_SIZE), "\"auto\" takes the flag's value: not given");
        assertEquals("command line", g.origin(Flag.LEARNING_RATE), "\"auto\": the flag's own origin");
        assertFalse(g.contains(Flag.GRADIENT_CHECKPOINTING));

        // device none says "on the device" as explicitly
        GivenFlags none = fx.train("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2, \"offload_optimizer\": {\"device\": \"none\"}}}").given();
        assertTrue(none.contains(Flag.OFFLOAD_OPTIMIZER));
        // no offload block: the placement stays open
        assertFalse(fx.train("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2}}").given().contains(Flag.OFFLOAD_OPTIMIZER));
        // the command line's own setting keeps its origin where both agree
        assertEquals("command line", fx.train("--deepspeed", offload, "--offload_optimizer", "cpu", "--learning_rate", "1e-3",
                "--warmup_ratio", "0").given().origin(Flag.OFFLOAD_OPTIMIZER));
    }

    @Test
    void theRecordIsACopyAndNoneGivesNothing() {
        var m = new java.util.EnumMap<Flag, String>(Flag.class);
        m.put(Flag.SEED, "command line");
        GivenFlags g = new GivenFlags(m);
        m.put(Flag.BF16, "command line");
        assertEquals(Set.of(Flag.SEED), g.flags());
        assertThrows(UnsupportedOperationException.class, () -> g.origins().put(Flag.BF16, "x"));
        assertTrue(GivenFlags.none().flags().isEmpty());
        assertEquals(Map.of(), GivenFlags.none().origins());
    }

    @Test
    void withChangesFlagsAndRefusesContradictions() {
        TrainArgs a = fx.parse("--bf16");
        TrainArgs b = a.with(Map.of(Flag.GRADIENT_CHECKPOINTING, true, Flag.OFFLOAD_OPTIMIZER, OffloadOptimizer.CPU));
        assertTrue(b.gradientCheckpointing());
        assertEquals(OffloadOptimizer.CPU, b.offloadOptimizer());
        assertEquals(a.learningRate(), b.learningRate());
        assertTrue(b.bf16());
        ArgsException e = assertThrows(ArgsException.class, () -> a.with(Map.of(Flag.BITS, 4)));
        assertTrue(e.getMessage().contains("--bits 4 needs --lora_enable"), e.getMessage());
        ArgsException range = assertThrows(ArgsException.class, () -> a.with(Map.of(Flag.MAX_SEQ_LENGTH, 1)));
        assertTrue(range.getMessage().contains("--max_seq_length 1"), range.getMessage());
    }
}
