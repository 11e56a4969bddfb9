package dev.jtune.train.args;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PresetAndConfigTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    private static void assertQlora(TrainArgs a, int rank, int alpha, int accumulation, int maxLength) {
        assertEquals(4, a.bits());
        assertTrue(a.doubleQuant());
        assertEquals(QuantType.NF4, a.quantType());
        assertTrue(a.loraEnable());
        assertTrue(a.freezeLlm());
        assertEquals(rank, a.loraRank());
        assertEquals(alpha, a.loraAlpha());
        assertEquals(accumulation, a.gradientAccumulationSteps());
        assertEquals(maxLength, a.maxSeqLength());
        assertTrue(a.gradientCheckpointing());
        assertTrue(a.bf16());
        assertEquals(1, a.perDeviceTrainBatchSize());
    }

    @Test
    void thePresetsHoldTheirValues() {
        assertQlora(fx.parse("--preset", "memory_optimized"), 32, 64, 8, 32768);
        assertQlora(fx.parse("--preset", "ultra_memory_optimized"), 16, 32, 16, 16384);
        assertQlora(fx.parse("--preset=extreme_memory_optimized"), 8, 16, 32, 8192);
        assertEquals(Preset.MEMORY_OPTIMIZED, fx.parse("--preset", "memory_optimized").preset());
        // what a preset does not set keeps HF's default
        assertEquals(5e-5, fx.parse("--preset", "memory_optimized").learningRate());
        // an image-text model's tower and projector stay frozen under every preset (the seed's memory guide)
        for (Preset p : Preset.values()) {
            TrainArgs a = fx.parse("--preset", p.flagValue());
            assertTrue(a.freezeVisionTower() && a.freezeProjector(), p + " keeps the tower and projector frozen");
        }
    }

    @Test
    void everyPresetResourceParsesAndNamesOnlyImplementedFlags() {
        for (Preset p : Preset.values()) {
            var values = ArgsParser.presetValues(p);
            assertTrue(values.size() >= 12, p + ": " + values);
            for (var e : values) {
                assertEquals(Flag.Support.IMPLEMENTED, Flag.byName(e.getKey()).support(), e.getKey());
            }
        }
    }

    @Test
    void anUnknownPresetIsNamed() {
        ArgsException e = fx.error("--preset", "memory_optimised");
        assertTrue(e.getMessage().contains("--preset memory_optimised is not one of memory_optimized,"), e.getMessage());
        assertTrue(e.getMessage().contains("did you mean memory_optimized?"), e.getMessage());
    }

    @Test
    void precedenceIsDefaultsThenPresetThenConfigThenCommandLine() {
        Path config = Fixture.write(tmp.resolve("c.json"), """
                {"lora_rank": 12, "learning_rate": 2e-4, "seed": 5, "--model_max_length": 1000}
                """);
        TrainArgs a = fx.parse("--preset", "memory_optimized", "--config", config.toString(), "--seed", "9");
        assertEquals(12, a.loraRank());              // config over preset
        assertEquals(64, a.loraAlpha());             // preset over default
        assertEquals(2e-4, a.learningRate());        // config over default
        assertEquals(9, a.seed());                   // command line over config
        assertEquals(1000, a.maxSeqLength());        // an alias, dashes allowed in keys
        assertEquals(config, a.config());
        // the command line beats the preset even when the preset comes after it
        assertEquals(4, fx.parse("--lora_rank", "4", "--preset", "memory_optimized").loraRank());
    }

    @Test
    void aConfigFileMayNameThePresetAndTheCommandLineOverridesIt() {
        Path config = Fixture.write(tmp.resolve("c.json"), """
                {"preset": "extreme_memory_optimized", "lora_rank": 4}
                """);
        TrainArgs a = fx.parse("--config", config.toString());
        assertEquals(Preset.EXTREME_MEMORY_OPTIMIZED, a.preset());
        assertEquals(4, a.loraRank());
        assertEquals(32, a.gradientAccumulationSteps());
        TrainArgs b = fx.parse("--config", config.toString(), "--preset", "memory_optimized");
        assertEquals(Preset.MEMORY_OPTIMIZED, b.preset());
        assertEquals(4, b.loraRank());
        assertEquals(8, b.gradientAccumulationSteps());
    }

    @Test
    void configValuesTakeJsonTypes() {
        Path config = Fixture.write(tmp.resolve("c.json"), """
                {"bf16": true, "lora_namespan_exclude": ["lm_head"], "report_to": ["jsonl", "html"],
                 "save_total_limit": null, "num_train_epochs": 2, "lr_scheduler_type": "cosine", "max_steps": "50"}
                """);
        TrainArgs a = fx.parse("--config", config.toString());
        assertTrue(a.bf16());
        assertEquals(java.util.List.of("lm_head"), a.loraNamespanExclude());
        assertEquals(java.util.List.of(ReportTarget.JSONL, ReportTarget.HTML), a.reportTo());
        assertEquals(2.0, a.numTrainEpochs());
        assertEquals(LrSchedulerType.COSINE, a.lrSchedulerType());
        assertEquals(50, a.maxSteps());
    }

    @Test
    void configProblemsNameTheFileAndAreCollectedWithTheRest() {
        Path config = Fixture.write(tmp.resolve("bad.json"), """
                {"learnig_rate": 1e-4, "per_device_train_batch_size": "x", "deepspeed": "zero3.json", "fp16": false,
                 "use_liger": true, "help": true}
                """);
        ArgsException e = fx.error("--config", config.toString(), "--seed", "x");
        String m = e.getMessage();
        assertEquals(5, e.problems().size(), m);
        assertTrue(m.contains("unknown flag 'learnig_rate' in config file " + config + " (did you mean --learning_rate?)"), m);
        assertTrue(m.contains("--per_device_train_batch_size x (config file " + config + ") is not an integer"), m);
        assertTrue(m.contains("--deepspeed zero3.json (config file " + config + ") is no file"), m);
        assertTrue(m.contains("'help' in config file"), m);
        assertTrue(m.contains("--seed x is not an integer"), m);
    }

    @Test
    void aConfigFileMustBeAJsonObject() {
        Path notJson = Fixture.write(tmp.resolve("a.json"), "{ nope");
        assertTrue(fx.error("--config", notJson.toString()).getMessage().contains("is not valid JSON"));
        Path array = Fixture.write(tmp.resolve("b.json"), "[1, 2]");
        assertTrue(fx.error("--config", array.toString()).getMessage().contains("must be a JSON object"));
    }

    @Test
    void aRangeErrorFromAConfigSaysWhereTheValueCameFrom() {
        Path config = Fixture.write(tmp.resolve("c.json"), "{\"eval_ratio\": 3}");
        ArgsException e = assertThrows(ArgsException.class, () -> fx.train("--config", config.toString()));
        assertTrue(e.getMessage().contains("--eval_ratio 3.0 (config file " + config + ") must be in [0, 1)"), e.getMessage());
    }
}
