package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.generate.Generator;
import dev.jtune.gemma.generate.SamplingOptions;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.ChatTemplate.GenerationPrompt;
import dev.jtune.gemma.tokenizer.GemmaTokenizer;
import dev.jtune.gemma.tokenizer.GemmaTokenizer.SpecialTokens;
import dev.jtune.train.CliFixtures.Run;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import static dev.jtune.train.CliFixtures.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jtune generate --adapter_path} on a model laid out as the embedded default writes it: {@code <run>/} holds
 * the adapter, {@code <run>/base_model/} the base with compact_vocabulary.json, and the adapter's
 * base_model_name_or_path is that directory's absolute path.
 */
class GenerateCommandTest {
    private static final String PROMPT = "Hello there zebra";

    /** The base's Gemma 3 ids: pad, eos, bos, turn markers, the chat prompt without "zebra", then filler up to 512. */
    private static int[] vocabulary(GemmaTokenizer tokenizer) {
        Set<Integer> ids = new LinkedHashSet<>(List.of(0, 1, 2, 105, 106));
        for (int id : new ChatTemplate(tokenizer).encode(List.of(new ChatTemplate.Message("user", "Hello there")), GenerationPrompt.ADD).ids()) {
            ids.add(id);
        }
        for (int id = 200_000; ids.size() < 512; id++) {
            ids.add(id);
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    private static String[] generate(String... model) {
        List<String> args = new ArrayList<>(List.of("generate"));
        args.addAll(List.of(model));
        args.addAll(List.of("--prompt", PROMPT, "--chat", "--max_new_tokens", "12", "--device", "cpu"));
        return args.toArray(String[]::new);
    }

    @Test
    void anAdapterOnACompactedBaseGeneratesWhatTheMergedModelGenerates(@TempDir Path tmp) throws IOException {
        GemmaTokenizer tokenizer = GemmaTokenizer.bundled();
        Path runDir = tmp.resolve("jtune-output");
        Path base = CliFixtures.base(runDir.resolve("base_model"), CliFixtures.tiny(), DType.F32, 11);
        int[] vocabulary = vocabulary(tokenizer);
        CliFixtures.compactVocabulary(base, vocabulary);
        CliFixtures.adapter(runDir, CliFixtures.tiny(), 5, base.toAbsolutePath().toString());

        Run adapted = run(generate("--adapter_path", runDir.toString()));
        assertEquals(0, adapted.rc(), adapted.all());
        assertTrue(adapted.err().contains("base model " + base.toAbsolutePath()), adapted.all());
        assertTrue(adapted.err().contains("warning:") && adapted.err().contains("left out") && adapted.err().contains("zebra"), adapted.all());
        assertFalse(adapted.out().isBlank(), adapted.all());

        // the same, computed here: Gemma 3 ids -> compact ids, greedy decoding with the adapter, compact ids -> Gemma 3 ids
        CompactVocabulary compact = CompactVocabulary.read(base.resolve(CompactVocabulary.FILE));
        int[] prompt = new ChatTemplate(tokenizer).encode(List.of(new ChatTemplate.Message("user", PROMPT)), GenerationPrompt.ADD).ids();
        int[] mapped = java.util.Arrays.stream(prompt).filter(compact::contains).map(compact::toCompact).toArray();
        assertTrue(mapped.length < prompt.length, "zebra is not in the vocabulary");
        int[] expected;
        try (Scope s = Scope.open("reference")) {
            Gemma3Model m = Gemma3Model.load(base, Device.CPU, DType.F32);
            PeftAdapter.load(runDir, m, DType.F32);
            int[] out = new Generator(m, Set.of(compact.toCompact(1), compact.toCompact(106))).generate(mapped, SamplingOptions.greedy(12), t -> { });
            expected = java.util.Arrays.stream(out).map(compact::toGemma).toArray();
        }
        assertEquals(tokenizer.decode(expected, SpecialTokens.SKIP) + System.lineSeparator(), adapted.out());

        Run explicit = run(generate("--model_path", base.toString(), "--adapter_path", runDir.toString()));
        assertEquals(adapted.out(), explicit.out(), explicit.all());
        Run plain = run(generate("--model_path", base.toString()));
        assertEquals(0, plain.rc(), plain.all());
        assertNotEquals(adapted.out(), plain.out(), "the adapter changes what the model says");

        Path merged = tmp.resolve("merged");
        Run merge = run("merge", "--adapter_path", runDir.toString(), "--output_dir", merged.toString(), "--device", "cpu");
        assertEquals(0, merge.rc(), merge.all());
        assertArrayEquals(Files.readAllBytes(base.resolve(CompactVocabulary.FILE)), Files.readAllBytes(merged.resolve(CompactVocabulary.FILE)));
        Run fromMerged = run(generate("--model_path", merged.toString()));
        assertEquals(0, fromMerged.rc(), fromMerged.all());
        assertEquals(adapted.out(), fromMerged.out(), "greedy tokens of the merged model = base + adapter");
    }

    @Test
    void idsTheModelCannotHaveAreAnErrorNotACrash(@TempDir Path tmp) {
        Path base = CliFixtures.base(tmp.resolve("base"), CliFixtures.tiny(), DType.F32, 11); // vocabulary 512, no compact_vocabulary.json
        Run r = run("generate", "--model_path", base.toString(), "--prompt", "Hello there", "--device", "cpu");
        assertEquals(1, r.rc(), r.all());
        assertTrue(r.err().contains("has a vocabulary of 512") && r.err().contains(CompactVocabulary.FILE), r.all());
    }

    @Test
    void badArgumentsAreNamed(@TempDir Path tmp) throws IOException {
        Path adapter = CliFixtures.adapter(tmp.resolve("a"), CliFixtures.tiny(), 5, "google/gemma-3-270m");
        Run r = run("generate", "--adapter_path", adapter.toString(), "--prompt", "hi");
        assertEquals(2, r.rc(), r.all());
        assertTrue(r.err().contains("--model_path is required: the adapter's base_model_name_or_path ('google/gemma-3-270m') is not a local model directory"), r.all());
        r = run("generate", "--model_path", tmp.toString());
        assertEquals(2, r.rc(), r.all());
        assertTrue(r.err().contains("--prompt is required"), r.all());
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        r = run("generate", "--model_path", tmp.toString(), "--adapter_path", empty.toString(), "--prompt", "hi");
        assertEquals(1, r.rc(), r.all());
        assertTrue(r.err().contains("no adapter_config.json in " + empty.toAbsolutePath()), r.all());
        r = run("generate", "--model_path", tmp.toString(), "--prompt", "hi", "--top_p", "0");
        assertEquals(2, r.rc(), r.all());
        r = run("generate", "stray");
        assertEquals(2, r.rc(), r.all());
        assertTrue(r.err().contains("'stray'"), r.all());
    }
}
