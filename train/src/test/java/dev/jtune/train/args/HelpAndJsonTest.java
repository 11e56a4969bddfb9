package dev.jtune.train.args;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.reflect.RecordComponent;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HelpAndJsonTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    // ---- the table ----

    @Test
    void theTableAndTheRecordMatchOneToOne() {
        Set<String> components = new HashSet<>();
        for (RecordComponent c : TrainArgs.class.getRecordComponents()) {
            components.add(c.getName());
        }
        Set<String> implemented = new HashSet<>();
        for (Flag f : Flag.implemented()) {
            implemented.add(f.componentName());
            Object d = f.defaultValue();
            if (d != null) {
                Class<?> type = TrainArgs.component(f).getType();
                assertTrue(box(type).isInstance(d), f.cli() + ": default " + d + " is not a " + type);
            }
            assertFalse(f.help().isBlank(), f.cli());
        }
        assertEquals(components, implemented);
        for (Flag f : Flag.values()) {
            if (f.support() == Flag.Support.IGNORED || f.support() == Flag.Support.REFUSED) {
                assertNotNull(f.reason(), f.cli());
            }
            for (String n : f.names()) {
                assertEquals(f, Flag.byName(n));
            }
        }
    }

    private static Class<?> box(Class<?> c) {
        if (!c.isPrimitive()) {
            return c;
        }
        return switch (c.getName()) {
            case "int" -> Integer.class;
            case "double" -> Double.class;
            case "boolean" -> Boolean.class;
            default -> throw new IllegalArgumentException(c.getName());
        };
    }

    // ---- --help ----

    @Test
    void helpListsEveryFlagOfTheTableWithTypeAndDefault() {
        String help = ((CommandLine.Help) fx.raw("--help")).text();
        List<String> lines = help.lines().toList();
        for (Flag f : Flag.values()) {
            String line = lines.stream().filter(l -> l.startsWith("  " + f.cli() + " ") || l.startsWith("  " + f.cli() + ","))
                    .findFirst().orElseThrow(() -> new AssertionError(f.cli() + " missing from --help"));
            for (String alias : f.aliases()) {
                assertTrue(line.contains("--" + alias), line);
            }
            switch (f.support()) {
                case IMPLEMENTED -> {
                    assertTrue(line.contains(f.help()), line);
                    assertTrue(line.contains(f.required() ? "(required)" : "(default: " + f.format(f.defaultValue()) + ")"), line);
                }
                case IGNORED -> assertTrue(line.contains("[ignored] " + f.reason()), line);
                case REFUSED -> assertTrue(line.contains("[refused] " + f.reason()), line);
                case ACTION -> assertTrue(line.contains(f.help()), line);
            }
        }
        assertTrue(help.contains("  --learning_rate FLOAT"), help);
        assertTrue(help.contains("(default: 5e-05)"), help);
        assertTrue(help.contains("--fp16 BOOL"), help);
        assertTrue(help.contains("(accepted: False)"), help);
    }

    @Test
    void helpIsGroupedListsPresetsAndNotesAndIsDeterministic() {
        String help = CommandLine.help();
        int last = -1;
        for (Flag.Group g : Flag.Group.values()) {
            int at = help.indexOf("\n" + g.title() + ":\n");
            assertTrue(at > last, g.title());
            last = at;
        }
        for (Preset p : Preset.values()) {
            assertTrue(help.contains("  " + p.flagValue() + " "), p.flagValue());
        }
        assertTrue(help.contains("memory_optimized           bits=4 double_quant=True quant_type=nf4 lora_enable=True"), help);
        assertTrue(help.contains("PYTORCH_CUDA_ALLOC_CONF") && help.contains("expandable segments by default"), help);
        assertEquals(help, CommandLine.help());
        assertFalse(help.contains("\r"));
    }

    // ---- describe and JSON ----

    private TrainArgs rich() {
        Path eval = Fixture.write(tmp.resolve("eval.json"), "[]");
        return fx.parse("--preset", "ultra_memory_optimized", "--learning_rate", "2e-4", "--lr_scheduler_type", "cosine",
                "--warmup_ratio", "0.03", "--eval_strategy", "steps", "--eval_data_path", eval.toString(), "--eval_steps", "25",
                "--save_total_limit", "3", "--report_to", "all", "--lora_namespan_exclude", "['lm_head','embed_tokens','vision']",
                "--optim", "adamw_torch_fused", "--device", "cuda:0", "--resume_from_checkpoint", "false",
                "--model_id", "google/gemma-3-270m", "--adam_epsilon", "1e-7", "--num_train_epochs", "0.5");
    }

    @Test
    void describeGivesEveryResolvedSettingOnItsOwnLine() {
        TrainArgs a = rich();
        List<String> lines = a.describe().lines().toList();
        assertEquals(Flag.implemented().size(), lines.size());
        for (int i = 0; i < lines.size(); i++) {
            Flag f = Flag.implemented().get(i);
            assertTrue(lines.get(i).startsWith(f.flagName() + " "), lines.get(i));
            assertTrue(lines.get(i).contains("= " + f.format(a.get(f))), lines.get(i));
        }
        assertTrue(a.describe().contains("learning_rate") && a.describe().contains("= 0.0002  (default 5e-05)"), a.describe());
        assertTrue(a.describe().contains("= 0.9\n"), a.describe()); // adam_beta1 at its default: no note
    }

    @Test
    void jsonRoundTrip() {
        TrainArgs a = rich();
        String json = a.toJson();
        assertEquals(a, TrainArgs.fromJson(json));
        assertEquals(json, TrainArgs.fromJson(json).toJson());
        assertTrue(json.contains("\"lora_namespan_exclude\" : [ \"lm_head\", \"embed_tokens\", \"vision\" ]"), json);
        assertTrue(json.contains("\"resume_from_checkpoint\" : \"false\""), json);

        Path file = tmp.resolve("ckpt/checkpoint-5/jtune_args.json");
        a.writeJson(file);
        assertEquals(a, TrainArgs.readJson(file));

        // the saved file also works as --config: the same run, now naming its config
        TrainArgs again = fx.parse("--config", file.toString());
        assertEquals(a.describe().replaceAll("(?m)^config +=.*\n", ""),
                again.describe().replaceAll("(?m)^config +=.*\n", ""));
        assertEquals(file, again.config());
        assertEquals(again, TrainArgs.fromJson(again.toJson()));
    }

    @Test
    void jsonOfTheDefaultsPlusRequirementsRoundTrips() throws Exception {
        TrainArgs a = fx.parse();
        assertEquals(a, TrainArgs.fromJson(a.toJson()));
        Path f = tmp.resolve("args.json");
        Files.writeString(f, a.toJson());
        assertEquals(a, TrainArgs.readJson(f));
    }

    @Test
    void savedArgumentsAreValidatedWhenRead() {
        ArgsException e = assertThrows(ArgsException.class, () -> TrainArgs.fromJson("""
                {"model_path": "/m", "data_path": "/d", "lora_enable": true, "bits": 4, "seed": "x", "lorarank": 3}
                """));
        assertEquals(3, e.problems().size(), e.getMessage());
        assertTrue(e.getMessage().contains("unknown flag 'lorarank' in saved arguments (did you mean --lora_rank?)"), e.getMessage());
        assertTrue(e.getMessage().contains("--lora_enable needs --freeze_llm"), e.getMessage());
        // files are not checked: saved arguments may be read on another machine
        TrainArgs.fromJson("{\"model_path\": \"/nowhere\", \"data_path\": \"/nothing.json\"}");
    }
}
