package dev.jtune.train.data;

import dev.jtune.gemma.tokenizer.ChatTemplate.Message;
import dev.jtune.train.data.DataException.Reason;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.jtune.train.data.TestData.array;
import static dev.jtune.train.data.TestData.jsonl;
import static dev.jtune.train.data.TestData.llava;
import static dev.jtune.train.data.TestData.messages;
import static dev.jtune.train.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Parsing and validating records, without tokenizing: layouts, forms, and every kind of bad record. */
class ConversationReaderTest {
    @TempDir
    Path dir;

    static List<ConversationReader.Result> readAll(Path file) {
        List<ConversationReader.Result> out = new ArrayList<>();
        try (ConversationReader r = ConversationReader.open(file)) {
            ConversationReader.Result x;
            while ((x = r.next()) != null) {
                out.add(x);
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return out;
    }

    static Conversation ok(ConversationReader.Result r) {
        if (r instanceof ConversationReader.Result.Bad b) {
            throw new AssertionError("expected a good record, got " + b.error().getMessage(), b.error());
        }
        return ((ConversationReader.Result.Ok) r).conversation();
    }

    static DataException bad(ConversationReader.Result r) {
        return assertInstanceOf(ConversationReader.Result.Bad.class, r, () -> "expected a bad record: " + r).error();
    }

    @Test
    void bothFormsInBothLayouts() {
        String[] records = {
                llava("What is 2 + 2?", "4."),
                messages("Capital of France?", "Paris."),
                "{\"conversations\": [{\"from\": \"system\", \"value\": \"Be brief.\"}, {\"from\": \"human\", \"value\":"
                        + " \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello!\"}]}",
                "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \" Part one. \"},"
                        + " {\"type\": \"text\", \"text\": \"Part two.\"}]}, {\"role\": \"model\", \"content\": \"Ok.\"}]}",
        };
        for (boolean lines : new boolean[] {true, false}) {
            Path f = write(dir, lines ? "d.jsonl" : "d.json", lines ? jsonl(records) : array(records));
            try (ConversationReader r = ConversationReader.open(f)) {
                assertEquals(lines, r.jsonLines());
            } catch (IOException e) {
                throw new AssertionError(e);
            }
            List<ConversationReader.Result> all = readAll(f);
            assertEquals(4, all.size());
            Conversation c0 = ok(all.get(0));
            assertTrue(c0.llava());
            assertEquals(List.of(Message.user("What is 2 + 2?"), Message.assistant("4.")), c0.messages());
            assertEquals(0, c0.index());
            assertEquals(lines ? 1 : 2, c0.line());
            Conversation c1 = ok(all.get(1));
            assertFalse(c1.llava());
            assertEquals(List.of(Message.user("Capital of France?"), Message.assistant("Paris.")), c1.messages());
            assertEquals(lines ? 2 : 3, c1.line());
            assertEquals(List.of(Message.system("Be brief."), Message.user("Hi"), Message.assistant("Hello!")),
                    ok(all.get(2)).messages());
            // text parts: each trimmed, then concatenated (the Gemma 3 template's rendering of list contents)
            assertEquals(List.of(Message.user("Part one.Part two."), Message.assistant("Ok.")), ok(all.get(3)).messages());
        }
    }

    @Test
    void blankLinesAndBomAndCrlfInJsonLines() {
        Path f = write(dir, "b.jsonl", "\uFEFF" + llava("a", "b") + "\r\n\r\n   \r\n" + messages("c", "d") + "\r\n");
        List<ConversationReader.Result> all = readAll(f);
        assertEquals(2, all.size());
        assertEquals(1, ok(all.get(0)).line());
        assertEquals(1, ok(all.get(1)).index());
        assertEquals(4, ok(all.get(1)).line());
    }

    @Test
    void prettyPrintedArrayGivesRecordStartLines() {
        String content = "[\n  {\n    \"conversations\": [\n      {\"from\": \"human\", \"value\": \"a\"},\n"
                + "      {\"from\": \"gpt\", \"value\": \"b\"}\n    ]\n  },\n  {\n    \"messages\": []\n  }\n]";
        List<ConversationReader.Result> all = readAll(write(dir, "p.json", content));
        assertEquals(2, ok(all.get(0)).line());
        DataException e = bad(all.get(1));
        assertEquals(1, e.recordIndex());
        assertEquals(8, e.line());
        assertEquals(Reason.MISSING_CONVERSATIONS, e.reason());
    }

    /** One malformed record, as the second record of a JSON lines file (index 1, line 2) and of an array (line 3). */
    void assertBad(String record, Reason reason, String... detailParts) {
        String good = llava("fine", "yes");
        for (boolean lines : new boolean[] {true, false}) {
            String name = lines ? "bad.jsonl" : "bad.json";
            Path f = write(dir, name, lines ? jsonl(good, record, good) : array(good, record, good));
            List<ConversationReader.Result> all = readAll(f);
            assertEquals(3, all.size(), name);
            ok(all.get(0));
            ok(all.get(2));
            DataException e = bad(all.get(1));
            assertEquals(reason, e.reason(), e.getMessage());
            assertEquals(1, e.recordIndex());
            assertEquals(lines ? 2 : 3, e.line());
            String m = e.getMessage();
            assertTrue(m.startsWith(f + ": record 1 (line " + (lines ? 2 : 3) + "): " + reason.label() + ": "), m);
            for (String part : detailParts) {
                assertTrue(m.contains(part), "'" + part + "' not in: " + m);
            }
        }
    }

    @Test
    void malformedRecordsNameFileRecordLineAndReason() {
        assertBad("{\"id\": 1, \"text\": \"hello\"}", Reason.MISSING_CONVERSATIONS,
                "no \"conversations\" (LLaVA) or \"messages\"", "id, text");
        assertBad("{\"conversations\": []}", Reason.MISSING_CONVERSATIONS, "empty array");
        assertBad("{\"conversations\": \"hi\"}", Reason.MISSING_CONVERSATIONS, "expected an array");
        assertBad("{\"conversations\": [], \"messages\": []}", Reason.MISSING_CONVERSATIONS, "both");
        assertBad("[1, 2]", Reason.NOT_AN_OBJECT, "an array");
        assertBad("\"just text\"", Reason.NOT_AN_OBJECT, "a string");
        assertBad("{\"conversations\": [\"hi\"]}", Reason.NOT_AN_OBJECT, "turn 0 is a string");
        assertBad("{\"conversations\": [{\"from\": \"bot\", \"value\": \"hi\"}]}", Reason.UNKNOWN_ROLE,
                "turn 0 has \"from\": \"bot\"", "human, gpt or system");
        assertBad("{\"messages\": [{\"role\": \"narrator\", \"content\": \"hi\"}]}", Reason.UNKNOWN_ROLE,
                "message 0 has \"role\": \"narrator\"");
        assertBad("{\"conversations\": [{\"value\": \"hi\"}]}", Reason.MISSING_FIELD, "turn 0 has no \"from\"");
        assertBad("{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\"}]}",
                Reason.MISSING_FIELD, "turn 1 has no \"value\"");
        assertBad("{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": 42}]}",
                Reason.NON_STRING_VALUE, "turn 1's \"value\" is a number (42)");
        assertBad("{\"conversations\": [{\"from\": \"human\", \"value\": null}]}", Reason.NON_STRING_VALUE, "is null");
        assertBad("{\"conversations\": [{\"from\": 3, \"value\": \"q\"}]}", Reason.NON_STRING_VALUE, "\"from\" is a number");
        assertBad("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 5}]}]}",
                Reason.NON_STRING_VALUE, "content part 0's \"text\" is a number");
        assertBad("{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"  \\n\"}]}",
                Reason.EMPTY_CONTENT, "turn 1 (from \"gpt\") has a blank \"value\"");
        assertBad("{\"messages\": [{\"role\": \"user\", \"content\": \"\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}",
                Reason.EMPTY_CONTENT, "message 0 (role \"user\") has an empty \"content\"");
        assertBad(llava("<image>\nWhat is in the picture?", "A cat."), Reason.IMAGE, "turn 0", "<image>", "text");
        assertBad("{\"image\": \"cat.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, "
                + "{\"from\": \"gpt\", \"value\": \"a\"}]}", Reason.IMAGE, "\"image\" field");
        assertBad("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\","
                + " \"text\": \"q\"}]}, {\"role\": \"assistant\", \"content\": \"a\"}]}", Reason.IMAGE, "content part 0 is an image");
        assertBad("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"audio\"}]}]}",
                Reason.UNSUPPORTED_CONTENT, "\"type\": \"audio\"");
        assertBad("{\"video\": \"clip.mp4\", \"conversations\": [{\"from\": \"human\", \"value\": \"<video>\\nq\"}, "
                + "{\"from\": \"gpt\", \"value\": \"a\"}]}", Reason.VIDEO, "\"video\" field", "video input is not built");
        assertBad("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"video\"}, {\"type\": \"text\","
                + " \"text\": \"q\"}]}, {\"role\": \"assistant\", \"content\": \"a\"}]}", Reason.VIDEO, "is a video");
        assertBad("{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}", Reason.NO_ASSISTANT_TURN, "no gpt turn");
    }

    @Test
    void invalidJsonInJsonLinesSpoilsOnlyItsLine() {
        String good = llava("q", "a");
        Path f = write(dir, "broken.jsonl", jsonl(good, "{\"conversations\": [{\"from\": \"human\" \"value\": 1}]}", good,
                good + " {\"x\": 1}"));
        List<ConversationReader.Result> all = readAll(f);
        assertEquals(4, all.size());
        DataException e = bad(all.get(1));
        assertEquals(Reason.INVALID_JSON, e.reason());
        assertTrue(e.getMessage().startsWith(f + ": record 1 (line 2): invalid JSON: line 2, column 37: "),
                e.getMessage());
        ok(all.get(2));
        DataException extra = bad(all.get(3));
        assertEquals(Reason.INVALID_JSON, extra.reason());
        assertTrue(extra.getMessage().contains("one record per line"), extra.getMessage());
    }

    @Test
    void prettyPrintedObjectIsNotJsonLines() {
        Path f = write(dir, "pretty.jsonl", "{\n  \"conversations\": []\n}\n");
        DataException e = bad(readAll(f).get(0));
        assertEquals(Reason.INVALID_JSON, e.reason());
        assertTrue(e.getMessage().contains("read as JSON lines"), e.getMessage());
    }

    @Test
    void invalidJsonInAnArrayEndsTheFile() {
        String good = llava("q", "a");
        Path f = write(dir, "broken.json", "[\n" + good + ",\n" + good + ",\n{\"conversations\": [}\n,\n" + good + "\n]");
        try (ConversationReader r = ConversationReader.open(f)) {
            ok(r.next());
            ok(r.next());
            DataException e = assertThrows(DataException.class, r::next);
            assertEquals(Reason.INVALID_JSON, e.reason());
            assertEquals(2, e.recordIndex());
            assertEquals(4, e.line());
            assertTrue(e.getMessage().startsWith(f + ": record 2 (line 4): invalid JSON: line 4, column 20: "),
                    e.getMessage());
            assertTrue(e.getMessage().contains("ends the file"), e.getMessage());
            assertNull(r.next());
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        Path unclosed = write(dir, "unclosed.json", "[\n" + good + ",\n");
        DataException e = assertThrows(DataException.class, () -> readAll(unclosed));
        assertEquals(Reason.INVALID_JSON, e.reason());
        assertEquals(1, e.recordIndex());
        Path trailing = write(dir, "trailing.json", "[" + good + "]\n[" + good + "]");
        e = assertThrows(DataException.class, () -> readAll(trailing));
        assertTrue(e.getMessage().contains("after the array's closing ']'"), e.getMessage());
    }

    @Test
    void unusableFiles() throws IOException {
        DataException e = assertThrows(DataException.class, () -> ConversationReader.open(dir.resolve("none.json")));
        assertEquals(Reason.FILE, e.reason());
        assertTrue(e.getMessage().contains("none.json: unusable file: no such file"), e.getMessage());
        e = assertThrows(DataException.class, () -> ConversationReader.open(write(dir, "empty.jsonl", " \n\n")));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
        e = assertThrows(DataException.class, () -> ConversationReader.open(write(dir, "csv.csv", "a,b\n1,2\n")));
        assertTrue(e.getMessage().contains("starts with 'a'"), e.getMessage());
        Path latin1 = dir.resolve("latin1.jsonl");
        Files.write(latin1, ("{\"conversations\": [{\"from\": \"human\", \"value\": \"caf\u00e9\"}]}\n")
                .getBytes(StandardCharsets.ISO_8859_1));
        e = assertThrows(DataException.class, () -> readAll(latin1));
        assertTrue(e.getMessage().contains("UTF-8"), e.getMessage());
    }
}
