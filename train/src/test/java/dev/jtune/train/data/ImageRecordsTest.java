package dev.jtune.train.data;

import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.ChatTemplate.Message;
import dev.jtune.train.data.DataException.Reason;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.jtune.train.data.ConversationReaderTest.bad;
import static dev.jtune.train.data.ConversationReaderTest.ok;
import static dev.jtune.train.data.TestData.jsonl;
import static dev.jtune.train.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Image records for an image-text model ({@link ConversationReader.Images#ACCEPTED}): LLaVA's {@code image} field with
 * {@code <image>} placeholders (as Gemma3-Finetune's data), and {@code messages} with image parts, become the template's
 * list contents (images as {@code <start_of_image>} between trimmed texts) and the files in placeholder order; a count
 * that differs, URLs, and files named two ways are bad records naming the record.
 */
class ImageRecordsTest {
    private static final String BOI = ChatTemplate.BOI;

    @TempDir
    Path dir;

    private List<ConversationReader.Result> read(String content) {
        List<ConversationReader.Result> out = new ArrayList<>();
        try (ConversationReader r = ConversationReader.open(write(dir, "d.jsonl", content)).images(ConversationReader.Images.ACCEPTED)) {
            for (ConversationReader.Result x; (x = r.next()) != null; ) {
                out.add(x);
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return out;
    }

    @Test
    void llavaAndMessagesImageRecordsBecomeListContentsAndFiles() {
        List<ConversationReader.Result> rs = read(jsonl(
                "{\"image\": \"cat.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nWhat is this? \"},"
                        + " {\"from\": \"gpt\", \"value\": \"A cat.\"}]}",
                "{\"image\": [\"a.jpg\", \"b.jpg\"], \"conversations\": [{\"from\": \"human\", \"value\": \"Compare <image> and\\n<image>\"},"
                        + " {\"from\": \"gpt\", \"value\": \"Same.\"}]}",
                "{\"images\": [\"x.png\"], \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\","
                        + " \"text\": \" Describe. \"}]}, {\"role\": \"assistant\", \"content\": \"Red.\"}]}",
                "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Left\"}, {\"type\": \"image\","
                        + " \"image\": \"l.png\"}, {\"type\": \"image\", \"path\": \"r.png\"}]}, {\"role\": \"assistant\", \"content\": \"Two.\"}]}",
                "{\"conversations\": [{\"from\": \"human\", \"value\": \"no image\"}, {\"from\": \"gpt\", \"value\": \"fine\"}]}"));
        Conversation c0 = ok(rs.get(0));
        assertEquals(List.of("cat.png"), c0.images());
        assertEquals(new Message("user", BOI + "What is this?"), c0.messages().get(0));
        Conversation c1 = ok(rs.get(1));
        assertEquals(List.of("a.jpg", "b.jpg"), c1.images());
        assertEquals("Compare" + BOI + "and" + BOI, c1.messages().get(0).content());
        Conversation c2 = ok(rs.get(2));
        assertEquals(List.of("x.png"), c2.images());
        assertEquals(BOI + "Describe.", c2.messages().get(0).content());
        Conversation c3 = ok(rs.get(3));
        assertEquals(List.of("l.png", "r.png"), c3.images());
        assertEquals("Left" + BOI + BOI, c3.messages().get(0).content());
        Conversation c4 = ok(rs.get(4));
        assertEquals(List.of(), c4.images(), "a text record in an image dataset");
        for (Conversation c : List.of(c0, c1, c2, c3)) {
            int markers = c.messages().stream().mapToInt(m -> ChatTemplate.countImages(m.content())).sum();
            assertEquals(c.images().size(), markers, "one marker per image");
        }
    }

    @Test
    void countsThatDifferUrlsAndTwoNamingsAreBadRecords() {
        List<ConversationReader.Result> rs = read(jsonl(
                "{\"image\": [\"a.png\", \"b.png\"], \"conversations\": [{\"from\": \"human\", \"value\": \"<image> q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}",
                "{\"conversations\": [{\"from\": \"human\", \"value\": \"<image> q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}",
                "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": \"http://x\"}]}, {\"role\": \"assistant\", \"content\": \"a\"}]}",
                "{\"images\": [\"a.png\"], \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\", \"image\": \"b.png\"}]},"
                        + " {\"role\": \"assistant\", \"content\": \"a\"}]}",
                "{\"image\": 7, \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}"));
        DataException e0 = bad(rs.get(0));
        assertEquals(Reason.IMAGE_COUNT, e0.reason());
        assertTrue(e0.getMessage().contains("1 image placeholder(s)") && e0.getMessage().contains("2 image file(s)")
                && e0.getMessage().contains("record 0"), e0.getMessage());
        assertEquals(Reason.IMAGE_COUNT, bad(rs.get(1)).reason());
        DataException e2 = bad(rs.get(2));
        assertEquals(Reason.UNSUPPORTED_CONTENT, e2.reason());
        assertTrue(e2.getMessage().contains("image_url"), e2.getMessage());
        assertEquals(Reason.IMAGE_COUNT, bad(rs.get(3)).reason());
        assertEquals(Reason.NON_STRING_VALUE, bad(rs.get(4)).reason());
    }
}
