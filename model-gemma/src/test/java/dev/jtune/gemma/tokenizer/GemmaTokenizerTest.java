package dev.jtune.gemma.tokenizer;

import dev.jtune.testing.Seeds;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.gemma.tokenizer.GemmaTokenizer.Bos;
import dev.jtune.gemma.tokenizer.GemmaTokenizer.SpecialTokens;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The real Gemma 3 tokenizer against HF tokenizers 0.23's output (encode_golden.json). */
class GemmaTokenizerTest {
    static GemmaTokenizer tok;
    static JsonNode golden;

    @BeforeAll
    static void load() throws IOException {
        tok = Tokenizers.gemma3();
        try (InputStream in = GemmaTokenizerTest.class.getResourceAsStream("/tokenizer/encode_golden.json")) {
            golden = new ObjectMapper().readTree(in);
        }
    }

    static int[] ints(JsonNode arr) {
        int[] r = new int[arr.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = arr.get(i).asInt();
        }
        return r;
    }

    static String show(String s) {
        StringBuilder sb = new StringBuilder();
        s.codePoints().forEach(cp -> {
            if (cp < 0x20 || cp == 0x7f || cp > 0x7e) {
                sb.append(String.format("\\u{%x}", cp));
            } else {
                sb.append((char) cp);
            }
        });
        return sb.toString();
    }

    @TestFactory
    Stream<DynamicTest> goldenStrings() {
        List<DynamicTest> tests = new ArrayList<>();
        for (int i = 0; i < golden.size(); i++) {
            JsonNode c = golden.get(i);
            String text = c.get("text").asText();
            int[] ids = ints(c.get("ids"));
            int[] withBos = ints(c.get("ids_with_bos"));
            String decoded = c.get("decoded").asText();
            tests.add(DynamicTest.dynamicTest(i + ": " + show(text), () -> {
                int[] got = tok.encode(text);
                assertArrayEquals(ids, got, () -> "encode(" + show(text) + ") = " + Arrays.toString(got)
                        + " " + tokens(got) + "; expected " + Arrays.toString(ids) + " " + tokens(ids));
                assertArrayEquals(withBos, tok.encode(text, Bos.ADD), "with <bos>");
                assertEquals(decoded, tok.decode(ids), "decode");
                assertEquals("<bos>" + decoded, tok.decode(withBos), "decode with <bos>");
                assertEquals(tok.decode(ids, SpecialTokens.SKIP), tok.decode(withBos, SpecialTokens.SKIP), "decode skipping specials");
            }));
        }
        return tests.stream();
    }

    @Test
    void goldenCount() {
        assertEquals(27, golden.size());
    }

    static List<String> tokens(int[] ids) {
        List<String> r = new ArrayList<>();
        for (int id : ids) {
            r.add(show(tok.token(id)));
        }
        return r;
    }

    @Test
    void vocabularyAndSpecialIds() {
        assertEquals(262_144, tok.vocabSize());
        assertEquals(262_145, tok.size());
        assertEquals(6415, tok.addedTokens().size());
        assertEquals(0, tok.padId());
        assertEquals(1, tok.eosId());
        assertEquals(2, tok.bosId());
        assertEquals(3, tok.unkId());
        assertEquals(105, tok.startOfTurnId());
        assertEquals(106, tok.endOfTurnId());
        assertEquals(262_144, tok.tokenId("<image_soft_token>"));
        assertEquals("<image_soft_token>", tok.token(262_144));
        assertEquals("<0x0A>", tok.token(tok.tokenId("<0x0A>")));
        assertEquals(9259, tok.tokenId("Hello"));
        assertEquals("Hello", tok.token(9259));
        assertEquals(-1, tok.tokenId("no such token, surely"));
        assertTrue(tok.isSpecial(2));
        assertFalse(tok.isSpecial(107)); // "\n" is an added token but not special
        assertEquals(514_906, tok.model().mergeCount());
        assertTrue(tok.model().splitsWords());
        assertArrayEquals(new int[] {'>'}, tok.model().boundaryJoiners()); // only ">▁</" joins across a word start
        assertThrows(IllegalArgumentException.class, () -> tok.token(262_145));
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[] {5, -1}));
    }

    @Test
    void decodeSkipsSpecialTokens() {
        int[] ids = tok.encode("<start_of_turn>user\nHi<end_of_turn>\n", Bos.ADD);
        assertEquals("<bos><start_of_turn>user\nHi<end_of_turn>\n", tok.decode(ids));
        assertEquals("user\nHi\n", tok.decode(ids, SpecialTokens.SKIP));
    }

    @Test
    void invalidUtf8ByteRunsDecodeToOneReplacementPerByte() {
        int b0 = tok.tokenId("<0xE4>");
        int b1 = tok.tokenId("<0xB8>");
        int a = tok.tokenId("a");
        assertEquals("\uFFFD\uFFFDa", tok.decode(new int[] {b0, b1, a}));
        assertEquals("中", tok.decode(new int[] {b0, b1, tok.tokenId("<0xAD>")}));
    }

    /** Encode then decode gives the text back: the normalizer only maps ' ' to '▁' and the decoder maps it back. */
    @Test
    void randomUnicodeRoundTrips() {
        Random rnd = Seeds.random(1234);
        int[][] ranges = {
                {0x20, 0x7e}, {0x09, 0x0d}, {0x00, 0x1f}, {0xa0, 0x24f}, {0x370, 0x52f}, {0x590, 0x6ff}, {0x900, 0xdff},
                {0x3040, 0x30ff}, {0x4e00, 0x9fff}, {0xac00, 0xd7a3}, {0xe000, 0xf8ff}, {0xfb00, 0xfffd},
                {0x1f300, 0x1faff}, {0x10000, 0x10ffff}, {0x200b, 0x200f}};
        String[] fragments = {" ", "  ", "\n", "\n\n", "\t", "<bos>", "<start_of_turn>", "<unused7>", "<table>", "</",
                ">", "> </", "<0x41>", "\r\n", "<", "<end_of_turn"};
        for (int iter = 0; iter < 3000; iter++) {
            StringBuilder sb = new StringBuilder();
            int len = rnd.nextInt(40);
            for (int k = 0; k < len; k++) {
                if (rnd.nextInt(6) == 0) {
                    sb.append(fragments[rnd.nextInt(fragments.length)]);
                    continue;
                }
                int[] r = ranges[rnd.nextInt(ranges.length)];
                int cp = r[0] + rnd.nextInt(r[1] - r[0] + 1);
                if (cp >= 0xd800 && cp <= 0xdfff) {
                    continue;
                }
                if (cp == 0x2581) { // '▁' itself decodes to ' ': the one character that does not round-trip
                    continue;
                }
                sb.appendCodePoint(cp);
            }
            String s = sb.toString();
            int[] ids = tok.encode(s);
            assertEquals(s, tok.decode(ids), () -> "round trip of " + show(s) + " via " + tokens(ids));
        }
    }

    @Test
    void literalLowerBlockIsTheOneNonRoundTrip() {
        // documented behaviour: '▁' in the input is indistinguishable from a space after normalization
        assertEquals("a b", tok.decode(tok.encode("a▁b")));
        assertArrayEquals(tok.encode("a b"), tok.encode("a▁b"));
    }

    /** The heap and the linear-scan merge loops must agree everywhere (the encoder picks by word length). */
    @Test
    void heapAndLinearMergeAgree() {
        Random rnd = Seeds.random(7);
        String alphabet = "aaaabbbcde▁▁▁▁ .,!?\nththeingTHE的是了한국😀日本ö";
        BpeModel m = tok.model();
        for (int iter = 0; iter < 5000; iter++) {
            int len = 1 + rnd.nextInt(60);
            StringBuilder sb = new StringBuilder();
            for (int k = 0; k < len; k++) {
                int at = rnd.nextInt(alphabet.length());
                if (Character.isSurrogate(alphabet.charAt(at))) {
                    sb.append("😀");
                } else {
                    sb.append(alphabet.charAt(at));
                }
            }
            String s = sb.toString();
            IntList a = new IntList(8);
            IntList b = new IntList(8);
            IntList c = new IntList(8);
            m.mergeWordWithHeap(s, a);
            m.mergeWordLinear(s, b);
            m.encode(s, c); // with word cuts and the cache
            assertArrayEquals(a.toArray(), b.toArray(), () -> "heap vs linear on " + show(s));
            assertArrayEquals(a.toArray(), c.toArray(), () -> "whole vs cut into words on " + show(s));
        }
    }

    /** Long stretches (a whole paragraph is one BPE pre-token on Gemma 3) give the same ids as their words. */
    @Test
    void longTextEqualsWholeSequenceMerge() {
        String text = "The quick brown fox jumps over the lazy dog. ".repeat(40)
                + "日本語のテキストと中文文本，还有한국어. " .repeat(10) + "<a> </b> >  </td>";
        String normalized = text.replace(' ', '▁');
        IntList whole = new IntList(16);
        tok.model().mergeWordWithHeap(normalized, whole);
        IntList cut = new IntList(16);
        tok.model().encode(normalized, cut);
        assertArrayEquals(whole.toArray(), cut.toArray());
    }

    @Test
    void threadsShareOneTokenizer() throws Exception {
        String text = "Concurrent encoding must give the same ids — 同じ結果. ";
        int[] expected = tok.encode(text.repeat(50));
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < 4; t++) {
            Thread th = new Thread(() -> {
                try {
                    for (int k = 0; k < 50; k++) {
                        assertArrayEquals(expected, tok.encode(text.repeat(50)));
                    }
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            threads.add(th);
            th.start();
        }
        for (Thread th : threads) {
            th.join();
        }
        assertTrue(errors.isEmpty(), () -> errors.toString());
    }

    // ------------------------------------------------------------------ loading errors

    @Test
    void missingFileIsAClearError(@TempDir Path dir) {
        Path missing = dir.resolve("nope/tokenizer.json");
        TokenizerException e = assertThrows(TokenizerException.class, () -> GemmaTokenizer.load(missing));
        assertTrue(e.getMessage().contains("not found") && e.getMessage().contains("nope"), e.getMessage());
        TokenizerException e2 = assertThrows(TokenizerException.class, () -> GemmaTokenizer.load(dir));
        assertTrue(e2.getMessage().contains("tokenizer.json"), e2.getMessage());
    }

    @Test
    void malformedJsonIsAClearError() {
        TokenizerException e = assertThrows(TokenizerException.class,
                () -> load("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,, }}}"));
        assertTrue(e.getMessage().contains("malformed JSON") && e.getMessage().contains("line 1"), e.getMessage());
        TokenizerException e2 = assertThrows(TokenizerException.class, () -> load("{\"version\": \"1.0\"}"));
        assertTrue(e2.getMessage().contains("model") && e2.getMessage().contains("missing"), e2.getMessage());
    }

    @Test
    void unsupportedModelTypeNamesWhatAndWhere() {
        TokenizerException e = assertThrows(TokenizerException.class,
                () -> load("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}"));
        assertTrue(e.getMessage().contains("'Unigram'") && e.getMessage().contains("model.type"), e.getMessage());
        TokenizerException e2 = assertThrows(TokenizerException.class,
                () -> load("{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"BertNormalizer\"}]},"
                        + "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"));
        assertTrue(e2.getMessage().contains("'BertNormalizer'") && e2.getMessage().contains("normalizer.normalizers[0]"),
                e2.getMessage());
    }

    @Test
    void mergeOfUnknownTokenIsAClearError() {
        TokenizerException e = assertThrows(TokenizerException.class,
                () -> load("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"c\"]]}}"));
        assertTrue(e.getMessage().contains("model.merges[0]") && e.getMessage().contains("'c'"), e.getMessage());
        TokenizerException e2 = assertThrows(TokenizerException.class,
                () -> load("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}"));
        assertTrue(e2.getMessage().contains("'ab'"), e2.getMessage());
    }

    private static GemmaTokenizer load(String json) {
        return GemmaTokenizer.load(new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)), "test.json");
    }

    @Test
    void plainAndGzippedFilesLoadAlike(@TempDir Path dir) throws IOException {
        byte[] json = PipelineComponentsTest.TINY.getBytes(StandardCharsets.UTF_8);
        Path plain = dir.resolve("plain/tokenizer.json");
        Files.createDirectories(plain.getParent());
        Files.write(plain, json);
        Path gz = dir.resolve("gz/tokenizer.json.gz");
        Files.createDirectories(gz.getParent());
        try (var out = new java.util.zip.GZIPOutputStream(Files.newOutputStream(gz))) {
            out.write(json);
        }
        GemmaTokenizer fromPlain = GemmaTokenizer.load(plain);
        GemmaTokenizer fromDir = GemmaTokenizer.load(plain.getParent());
        GemmaTokenizer fromGzDir = GemmaTokenizer.load(gz.getParent()); // a directory with only tokenizer.json.gz
        GemmaTokenizer fromStream = GemmaTokenizer.load(new ByteArrayInputStream(json), "bytes");
        for (GemmaTokenizer t : List.of(fromPlain, fromDir, fromGzDir, fromStream)) {
            assertArrayEquals(new int[] {8, 3, 0, 4}, t.encode("abcxbc"), t.source());
        }
        // a corrupt gzip stream is reported, not hung on
        byte[] broken = Arrays.copyOf(Files.readAllBytes(gz), 30);
        TokenizerException e = assertThrows(TokenizerException.class,
                () -> GemmaTokenizer.load(new ByteArrayInputStream(broken), "broken.gz"));
        assertTrue(e.getMessage().contains("broken.gz"), e.getMessage());
    }
}
