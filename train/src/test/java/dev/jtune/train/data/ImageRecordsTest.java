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

    /**
     * The builder for an image-text model: each image's place holds {@code <start_of_image>}, its soft tokens and
     * {@code <end_of_image>} (as the processor's golden), labels ignore them (a user turn), files resolve under the
     * image folder; a missing file is a bad record naming it; truncation never cuts through an image (the example
     * stops before it, and keeps only the images it holds whole).
     */
    @Test
    void theBuilderExpandsImagesResolvesFilesAndNeverCutsThroughAnImage() throws IOException {
        Path images = java.nio.file.Files.createDirectories(dir.resolve("imgs"));
        java.nio.file.Files.writeString(images.resolve("a.png"), "not decoded here");
        java.nio.file.Files.writeString(images.resolve("b.png"), "not decoded here");
        var tok = TestData.tokenizer();
        int boi = tok.encode(BOI)[0];
        int soft = tok.encode(ChatTemplate.IMAGE_TOKEN)[0];
        int n = 4;
        DataOptions.ImageInput input = new DataOptions.ImageInput(images, n, boi);
        Path data = write(dir, "v.jsonl", jsonl(
                "{\"image\": [\"a.png\", \"b.png\"], \"conversations\": [{\"from\": \"human\", \"value\": \"<image> and <image>: same?\"},"
                        + " {\"from\": \"gpt\", \"value\": \"Yes, the same picture.\"}]}",
                "{\"image\": \"missing.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}"));
        DatasetBuilder.Dataset ds = new DatasetBuilder(TestData.template(), DataOptions.of(4096).withSkipBadRecords(true).withImages(input)).load(data);
        assertEquals(1, ds.examples().size());
        assertEquals(1, ds.stats().skipped(Reason.IMAGE_FILE));
        Example e = ds.examples().getFirst();
        assertEquals(List.of(images.resolve("a.png"), images.resolve("b.png")), e.images());
        int[] ids = e.ids();
        int runs = 0;
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] == boi) {
                runs++;
                for (int k = 1; k <= n; k++) {
                    assertEquals(soft, ids[i + k], "soft token " + k + " of image " + runs);
                    assertEquals(Example.IGNORE, e.labels()[i + k], "image tokens are not trained on");
                }
                assertEquals(tok.encode("<end_of_image>")[0], ids[i + n + 1]);
            }
        }
        assertEquals(2, runs);
        DataException missing = assertThrowsData(() -> new DatasetBuilder(TestData.template(), DataOptions.of(4096).withImages(input)).load(data));
        assertTrue(missing.getMessage().contains("missing.png") && missing.getMessage().contains("record 1"), missing.getMessage());

        // a limit inside the second image: the example stops before its <start_of_image> and keeps the first image only
        String twoTurns = "{\"image\": [\"a.png\", \"b.png\"], \"conversations\": [{\"from\": \"human\", \"value\": \"<image> what?\"},"
                + " {\"from\": \"gpt\", \"value\": \"A.\"}, {\"from\": \"human\", \"value\": \"<image> and this?\"}, {\"from\": \"gpt\", \"value\": \"B.\"}]}";
        Example whole = new DatasetBuilder(TestData.template(), DataOptions.of(4096).withImages(input)).load(write(dir, "two.jsonl", jsonl(twoTurns)))
                .examples().getFirst();
        int secondBoi = nth(whole.ids(), boi, 2);
        Example cut = new DatasetBuilder(TestData.template(), DataOptions.of(secondBoi + 3).withImages(input))
                .load(write(dir, "two.jsonl", jsonl(twoTurns))).examples().getFirst();
        assertEquals(secondBoi, cut.length(), "stops before the image that would not fit whole");
        assertEquals(List.of(images.resolve("a.png")), cut.images());
        assertTrue(cut.countedTokens() > 0, "the first answer is still trained on");
        assertTrue(java.util.Arrays.equals(java.util.Arrays.copyOf(whole.ids(), secondBoi), cut.ids()));
    }

    private static int nth(int[] ids, int id, int n) {
        for (int i = 0, seen = 0; i < ids.length; i++) {
            if (ids[i] == id && ++seen == n) {
                return i;
            }
        }
        throw new AssertionError("no " + n + "th " + id);
    }

    private static DataException assertThrowsData(org.junit.jupiter.api.function.Executable run) {
        return org.junit.jupiter.api.Assertions.assertThrows(DataException.class, run);
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
