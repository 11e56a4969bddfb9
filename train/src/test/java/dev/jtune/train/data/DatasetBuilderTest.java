package dev.jtune.train.data;

import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.ChatTemplate.GenerationPrompt;
import dev.jtune.gemma.tokenizer.ChatTemplate.Message;
import dev.jtune.gemma.tokenizer.GemmaTokenizer;
import dev.jtune.gemma.tokenizer.GemmaTokenizer.SpecialTokens;
import dev.jtune.train.data.DataException.Reason;
import dev.jtune.train.data.DatasetBuilder.Dataset;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.jtune.train.data.TestData.array;
import static dev.jtune.train.data.TestData.jsonl;
import static dev.jtune.train.data.TestData.llava;
import static dev.jtune.train.data.TestData.messages;
import static dev.jtune.train.data.TestData.q;
import static dev.jtune.train.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Records to examples with the real Gemma 3 tokenizer: labels, truncation, bad records, lazy == eager, bundled data. */
class DatasetBuilderTest {
    static GemmaTokenizer tok;
    static ChatTemplate template;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() {
        tok = TestData.tokenizer();
        template = new ChatTemplate(tok);
    }

    static DatasetBuilder builder(int maxSeqLength) {
        return new DatasetBuilder(template, DataOptions.of(maxSeqLength));
    }

    static String conversation(List<String[]> turns, boolean llavaForm) {
        StringBuilder sb = new StringBuilder(llavaForm ? "{\"id\": 7, \"conversations\": [" : "{\"messages\": [");
        for (int i = 0; i < turns.size(); i++) {
            String[] t = turns.get(i);
            String role = llavaForm ? switch (t[0]) {
                case "user" -> "human";
                case "assistant" -> "gpt";
                default -> t[0];
            } : t[0];
            sb.append(i == 0 ? "" : ", ").append(llavaForm ? "{\"from\": " : "{\"role\": ").append(q(role))
                    .append(llavaForm ? ", \"value\": " : ", \"content\": ").append(q(t[1])).append('}');
        }
        return sb.append("]}").toString();
    }

    static final List<List<String[]>> CONVERSATIONS = List.of(
            List.of(new String[] {"user", "What is 7 × 8?"}, new String[] {"assistant", "7 × 8 = 56."}),
            List.of(new String[] {"system", "You are terse."}, new String[] {"user", "Capital of Peru?"},
                    new String[] {"assistant", "  Lima.\n"}),
            List.of(new String[] {"user", "Hi!"}, new String[] {"assistant", "Hello! How can I help?"},
                    new String[] {"user", "Convert 10 km to miles."},
                    new String[] {"assistant", "About 6.21 miles.\n\nOne mile is 1.609344 km."}),
            List.of(new String[] {"user", "Rewrite: \"me and him went\""}, new String[] {"assistant", "He and I went."},
                    new String[] {"user", "Thanks"}));

    @Test
    void llavaAndMessagesGiveIdenticalExamplesInBothLayouts() {
        List<Example> reference = null;
        for (boolean llavaForm : new boolean[] {true, false}) {
            String[] records = CONVERSATIONS.stream().map(c -> conversation(c, llavaForm)).toArray(String[]::new);
            for (boolean lines : new boolean[] {true, false}) {
                Path f = write(dir, "c" + llavaForm + lines + (lines ? ".jsonl" : ".json"),
                        lines ? jsonl(records) : array(records));
                Dataset d = builder(4096).load(f);
                assertEquals(CONVERSATIONS.size(), d.examples().size());
                if (reference == null) {
                    reference = d.examples();
                } else {
                    assertEquals(reference, d.examples(), "llava " + llavaForm + ", jsonl " + lines);
                }
            }
        }
        // and the same as encoding the messages directly
        for (int i = 0; i < CONVERSATIONS.size(); i++) {
            List<Message> ms = CONVERSATIONS.get(i).stream().map(t -> new Message(t[0], t[1])).toList();
            assertEquals(builder(4096).toExample(ms), reference.get(i));
        }
    }

    @Test
    void labelsCoverExactlyTheModelTurns() {
        String[] records = CONVERSATIONS.stream().map(c -> conversation(c, true)).toArray(String[]::new);
        Dataset d = builder(4096).load(write(dir, "l.jsonl", jsonl(records)));
        int eot = tok.endOfTurnId();
        for (int i = 0; i < CONVERSATIONS.size(); i++) {
            Example e = d.examples().get(i);
            assertEquals(tok.bosId(), e.ids()[0]);
            assertEquals(Example.IGNORE, e.labels()[0]);
            List<String> expected = new ArrayList<>();
            for (String[] t : CONVERSATIONS.get(i)) {
                if (t[0].equals("assistant")) {
                    expected.add(t[1].strip() + "<end_of_turn>");
                }
            }
            // the labelled ids, as maximal runs, decode to the answers + <end_of_turn>; labels equal ids there
            List<String> runs = new ArrayList<>();
            int p = 0;
            int[] ids = e.ids();
            int[] labels = e.labels();
            while (p < ids.length) {
                if (labels[p] == Example.IGNORE) {
                    p++;
                    continue;
                }
                int start = p;
                while (p < ids.length && labels[p] != Example.IGNORE) {
                    assertEquals(ids[p], labels[p]);
                    p++;
                }
                assertEquals(eot, ids[p - 1], "each labelled run ends with <end_of_turn>");
                runs.add(tok.decode(Arrays.copyOfRange(ids, start, p), SpecialTokens.KEEP));
            }
            assertEquals(expected, runs);
            // and everything else is the prompt: <bos>, user/system turns, headers, the "\n" after <end_of_turn>
            int trained = (int) Arrays.stream(labels).filter(l -> l != Example.IGNORE).count();
            assertEquals(template.encode(CONVERSATIONS.get(i).stream().map(t -> new Message(t[0], t[1])).toList(),
                    GenerationPrompt.OMIT).trainedCount(), trained);
        }
        assertEquals(d.stats().trainedTokens(),
                d.examples().stream().mapToLong(Example::countedTokens).sum());
    }

    @Test
    void truncationIsCountedNeverSilent() {
        String longAnswer = "word ".repeat(300).strip();
        String longQuestion = "please ".repeat(300).strip();
        String[] records = {
                llava("short", "fine"),                  // fits
                llava("Say word 300 times.", longAnswer), // tail cut
                llava(longQuestion, "ok"),               // the answer lies beyond the limit: dropped
                llava("again", "fine again"),
        };
        Path f = write(dir, "long.jsonl", jsonl(records));
        Dataset full = builder(100_000).load(f);
        assertEquals(4, full.examples().size());
        int[] lengths = full.examples().stream().mapToInt(Example::length).toArray();
        int max = 64;
        assertTrue(lengths[0] < max && lengths[3] < max && lengths[1] > max && lengths[2] > max, Arrays.toString(lengths));

        Dataset d = builder(max).load(f);
        DataStats s = d.stats();
        assertEquals(4, s.recordsRead());
        assertEquals(3, d.examples().size());
        assertEquals(3, s.examplesKept());
        assertEquals(full.examples().get(0), d.examples().get(0));
        assertEquals(full.examples().get(3), d.examples().get(2));
        Example cut = d.examples().get(1);
        Example whole = full.examples().get(1);
        assertEquals(max, cut.length());
        assertArrayEquals(Arrays.copyOf(whole.ids(), max), cut.ids());
        assertArrayEquals(Arrays.copyOf(whole.labels(), max), cut.labels());
        assertEquals(1, s.truncatedExamples());
        assertEquals(whole.length() - max, s.tokensCut());
        long trainedWhole = Arrays.stream(whole.labels()).filter(l -> l != Example.IGNORE).count();
        long trainedCut = Arrays.stream(cut.labels()).filter(l -> l != Example.IGNORE).count();
        assertEquals(trainedWhole - trainedCut, s.trainedTokensCut());
        Example dropped = full.examples().get(2);
        assertEquals(1, s.droppedTooLong());
        assertEquals(dropped.length(), s.droppedTokens());
        assertEquals(Arrays.stream(dropped.labels()).filter(l -> l != Example.IGNORE).count(), s.droppedTrainedTokens());
        assertEquals(1, s.droppedSamples().size());
        assertTrue(s.droppedSamples().get(0).contains("record 2 (line 3)"), s.droppedSamples().get(0));
        assertEquals(max, s.longest());
        assertEquals(Math.max(lengths[1], lengths[2]), s.longestBeforeTruncation());
        assertEquals(d.examples().stream().mapToLong(Example::length).sum(), s.totalTokens());
        assertEquals(full.stats().totalTokens(), s.totalTokens() + s.tokensCut() + s.droppedTokens(), "every token accounted for");
        assertEquals(full.stats().trainedTokens(), s.trainedTokens() + s.trainedTokensLost());
        assertTrue(s.lossy());
        String summary = s.summary();
        assertTrue(summary.contains("truncated 1 example to --max_seq_length 64"), summary);
        assertTrue(summary.contains("dropped 1 example whose trained tokens all lie beyond --max_seq_length 64"), summary);
        assertFalse(full.stats().lossy());
    }

    static final String[] MIXED = {
            llava("ok 0", "a"),
            "{\"conversations\": [{\"from\": \"gpt\", \"value\": \"starts with the model\"}, {\"from\": \"human\", \"value\": \"q\"}]}",
            llava("ok 2", "b"),
            llava("<image>\nwhat is this", "a cat"),
            "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"user\", \"content\": \"q again\"}, "
                    + "{\"role\": \"assistant\", \"content\": \"a\"}]}",
            "{\"conversations\": [{\"from\": \"human\" \"value\": \"broken\"}]}",
            messages("ok 6", "c"),
            "{\"text\": \"no conversation\"}",
            llava("ok 8", "d"),
            llava("<image> again", "x"),
    };

    @Test
    void strictModeStopsAtTheFirstBadRecord() {
        Path f = write(dir, "mixed.jsonl", jsonl(MIXED));
        DataException e = assertThrows(DataException.class, () -> builder(512).load(f));
        assertEquals(Reason.ROLES_NOT_ALTERNATING, e.reason());
        assertEquals(1, e.recordIndex());
        assertEquals(2, e.line());
        // ChatTemplate's own message comes through, wrapped with file, record and line
        assertTrue(e.getMessage().startsWith(f + ": record 1 (line 2): roles not alternating: message 0 has role"
                + " 'assistant' but 'user' was expected"), e.getMessage());
        assertTrue(e.getMessage().contains("conversations[i]"), e.getMessage());
        assertTrue(e.getCause() instanceof ChatTemplate.ChatFormatException);
    }

    @Test
    void skipModeCountsByReason() {
        Path f = write(dir, "mixed.jsonl", jsonl(MIXED));
        Dataset d = new DatasetBuilder(template, DataOptions.of(512).withSkipBadRecords(true)).load(f);
        DataStats s = d.stats();
        assertEquals(10, s.recordsRead());
        assertEquals(4, s.examplesKept());
        assertEquals(4, d.examples().size());
        assertEquals(6, s.skippedTotal());
        assertEquals(2, s.skipped(Reason.ROLES_NOT_ALTERNATING));
        assertEquals(2, s.skipped(Reason.IMAGE));
        assertEquals(1, s.skipped(Reason.INVALID_JSON));
        assertEquals(1, s.skipped(Reason.MISSING_CONVERSATIONS));
        assertEquals(0, s.skipped(Reason.EMPTY_CONTENT));
        assertEquals(6, s.skippedSamples().size());
        assertTrue(s.skippedSamples().stream().anyMatch(m -> m.startsWith(f + ": record 5 (line 6): invalid JSON")),
                s.skippedSamples().toString());
        String summary = s.summary();
        assertTrue(summary.contains("10 records -> 4 examples"), summary);
        assertTrue(summary.contains("skipped 6 bad records (--skip_bad_records): invalid JSON: 1, missing conversations: 1,"
                + " image record: 2, roles not alternating: 2"), summary);
        assertTrue(s.skippedSamples().get(0).contains("record 1 (line 2)"), "samples in file order");
        // the kept examples are the good records, in order
        Dataset good = builder(512).load(write(dir, "good.jsonl",
                jsonl(MIXED[0], MIXED[2], MIXED[6], MIXED[8])));
        assertEquals(good.examples(), d.examples());
    }

    @Test
    void lazyEqualsEager() {
        // the bundled data plus bad and too-long records, in skip mode; then the first error in strict mode
        List<String> records = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            records.add(llava("question " + i + ": " + "why ".repeat(i), "answer " + i + " " + "because ".repeat(i % 17)));
            if (i % 7 == 3) {
                records.add(MIXED[(i / 7) % MIXED.length]);
            }
        }
        Path f = write(dir, "many.jsonl", jsonl(records.toArray(String[]::new)));
        Path fa = write(dir, "many.json", array(records.stream().filter(r -> !r.contains("\"human\" \"value\""))
                .toArray(String[]::new)));
        for (Path file : List.of(f, fa)) {
            DataOptions base = DataOptions.of(48).withSkipBadRecords(true);
            Dataset eager = new DatasetBuilder(template, base).load(file);
            assertTrue(eager.stats().skippedTotal() > 0 && eager.stats().truncatedExamples() > 0
                    && eager.stats().droppedTooLong() > 0, eager.stats().summary());
            for (int workers : new int[] {1, 3, 8}) {
                Dataset lazy = new DatasetBuilder(template, base.withLazyPreprocess(true, workers)).load(file);
                assertEquals(eager.examples(), lazy.examples(), workers + " workers");
                assertEquals(eager.stats(), lazy.stats(), workers + " workers");
            }
            DataException strictEager = assertThrows(DataException.class,
                    () -> new DatasetBuilder(template, DataOptions.of(48)).load(file));
            DataException strictLazy = assertThrows(DataException.class,
                    () -> new DatasetBuilder(template, DataOptions.of(48).withLazyPreprocess(true, 4)).load(file));
            assertEquals(strictEager.getMessage(), strictLazy.getMessage());
        }
        Dataset bundledEager = builder(512).loadBundled();
        Dataset bundledLazy = new DatasetBuilder(template, DataOptions.of(512).withLazyPreprocess(true, 4)).loadBundled();
        assertEquals(bundledEager, bundledLazy);
    }

    @Test
    void lazyReaderErrorsSurfaceInOrder() {
        String good = llava("q", "a");
        StringBuilder sb = new StringBuilder("[\n");
        for (int i = 0; i < 50; i++) {
            sb.append(good).append(",\n");
        }
        sb.append("{\"conversations\": [}\n]");
        Path f = write(dir, "broken.json", sb.toString());
        for (boolean lazy : new boolean[] {false, true}) {
            DataOptions o = DataOptions.of(64).withSkipBadRecords(true).withLazyPreprocess(lazy, 2);
            DataException e = assertThrows(DataException.class, () -> new DatasetBuilder(template, o).load(f));
            assertEquals(Reason.INVALID_JSON, e.reason());
            assertEquals(50, e.recordIndex());
            assertEquals(52, e.line());
        }
    }

    @Test
    void bundledDatasetLoadsWithNoBadRecords() {
        Dataset d = new DatasetBuilder(template, DataOptions.of(2048)).loadBundled();
        DataStats s = d.stats();
        assertEquals(0, s.skippedTotal());
        assertFalse(s.lossy(), s.summary());
        assertTrue(s.recordsRead() >= 180 && s.recordsRead() <= 260, s.summary());
        assertEquals(s.recordsRead(), d.examples().size());
        assertTrue(s.longest() < 256, s.summary());
        // both forms, system turns and multi-turn conversations are in it
        List<Conversation> conversations = new ArrayList<>();
        try (ConversationReader r = DatasetBuilder.openBundled()) {
            ConversationReader.Result x;
            while ((x = r.next()) != null) {
                conversations.add(((ConversationReader.Result.Ok) x).conversation());
            }
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
        assertTrue(conversations.stream().filter(c -> !c.llava()).count() >= 10);
        assertTrue(conversations.stream().filter(Conversation::llava).count() >= 150);
        assertTrue(conversations.stream().filter(c -> c.messages().get(0).role().equals("system")).count() >= 10);
        assertTrue(conversations.stream().filter(c -> c.messages().size() >= 4).count() >= 10);
        System.out.println(s.summary());
    }
}
