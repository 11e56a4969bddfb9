package dev.jtune.gemma.tokenizer;

import dev.jtune.gemma.tokenizer.GemmaTokenizer.Bos;
import dev.jtune.gemma.tokenizer.GemmaTokenizer.SpecialTokens;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The parts of the HF pipeline that Gemma 3's file does not exercise (its added tokens have no strip flags, its
 * pre-tokenizer never splits, it never produces unk), on a small hand-made tokenizer.json. Expected values follow
 * HF tokenizers' semantics (added_vocabulary.rs find_matches, BPE merge_word, SplitDelimiterBehavior).
 */
class PipelineComponentsTest {

    private static List<String> split(PreTokenizer.Behavior b, String s) {
        List<String> out = new ArrayList<>();
        new PreTokenizer.Split("-", null, b).split(s, out);
        return out;
    }

    /** The example of HF's SplitDelimiterBehavior documentation. */
    @Test
    void splitBehaviors() {
        String s = "the-final--countdown";
        assertEquals(List.of("the", "final", "countdown"), split(PreTokenizer.Behavior.REMOVED, s));
        assertEquals(List.of("the", "-", "final", "-", "-", "countdown"), split(PreTokenizer.Behavior.ISOLATED, s));
        assertEquals(List.of("the-", "final-", "-", "countdown"), split(PreTokenizer.Behavior.MERGED_WITH_PREVIOUS, s));
        assertEquals(List.of("the", "-final", "-", "-countdown"), split(PreTokenizer.Behavior.MERGED_WITH_NEXT, s));
        assertEquals(List.of("the", "-", "final", "--", "countdown"), split(PreTokenizer.Behavior.CONTIGUOUS, s));
    }

    static final String TINY = """
            {
              "added_tokens": [
                {"id": 6, "content": "<sw>", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 7, "content": "<ls>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": false},
                {"id": 8, "content": "ab", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
                {"id": 9, "content": "<bos>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 10, "content": "<eos>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 11, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 12, "content": "<start_of_turn>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 13, "content": "<end_of_turn>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
              ],
              "normalizer": {"type": "Lowercase"},
              "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": false},
              "post_processor": null,
              "decoder": null,
              "model": {
                "merges": [["b", "c"], ["a", "bc"]],
                "type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": false,
                "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "bc": 4, "abc": 5, "<sw>": 6, "<ls>": 7, "ab": 8,
                          "<bos>": 9, "<eos>": 10, "<pad>": 11, "<start_of_turn>": 12, "<end_of_turn>": 13}
              }
            }
            """;

    @Test
    void genericPipeline() {
        // merges before vocab: resolved once the vocabulary is read
        GemmaTokenizer t = GemmaTokenizer.load(new ByteArrayInputStream(TINY.getBytes(StandardCharsets.UTF_8)), "tiny");
        assertEquals(14, t.vocabSize());
        // "ab" is a normalized added token: found after lowercasing, before BPE
        assertArrayEquals(new int[] {8, 3}, t.encode("ABC"));
        // unknown characters: unk, fused
        assertArrayEquals(new int[] {0, 4}, t.encode("xbc"));
        assertArrayEquals(new int[] {0}, t.encode("xyz"));
        // Split(" ", Removed)
        assertArrayEquals(new int[] {1, 2}, t.encode("a b"));
        // single_word: not inside a word
        assertArrayEquals(new int[] {0}, t.encode("x<sw>y"));
        assertArrayEquals(new int[] {0, 6, 0}, t.encode("x <sw> y"));
        // lstrip/rstrip swallow the surrounding whitespace
        assertArrayEquals(new int[] {3, 7, 3}, t.encode("c  <ls>\t c"));
        // no post-processor: Bos.ADD prepends <bos>; no decoder: tokens joined by spaces
        assertArrayEquals(new int[] {9, 3}, t.encode("c", Bos.ADD));
        assertEquals("c <ls> c", t.decode(new int[] {3, 7, 3}));
        assertEquals("c", t.decode(new int[] {6, 3}, SpecialTokens.SKIP));
    }

    @Test
    void decoderComponents() {
        Decoder strip = new Decoder.Strip(' ', 1, 0);
        assertEquals(List.of("a ", "b", " "), strip.decodeChain(List.of(" a ", "  b".substring(1), "  ")));
        assertEquals(-1, Decoder.ByteFallback.byteOf("<0xG0>"));
        assertEquals(0x0A, Decoder.ByteFallback.byteOf("<0x0a>"));
        assertEquals(0x0F, Decoder.ByteFallback.byteOf("<0x+F>")); // Rust's from_str_radix takes a sign
        assertEquals(List.of("\uFFFD", "\uFFFD", "x"),
                new Decoder.ByteFallback().decodeChain(List.of("<0xE5>", "<0x8F>", "x")));
        assertEquals(List.of("叫", "a"), new Decoder.ByteFallback().decodeChain(List.of("<0xE5>", "<0x8F>", "<0xAB>", "a")));
    }
}
