package dev.jtune.gemma.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.gemma.tokenizer.ChatTemplate.GenerationPrompt;
import dev.jtune.gemma.tokenizer.ChatTemplate.Message;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Issue 15's processor golden (gemma3-mm-tiny/mm_chat_golden.json: HF's Gemma3Processor with the real tokenizer, 256
 * image tokens): conversations with image parts render to HF's text, and the processor's expansion plus its tokenizer
 * call give exactly its ids and token_type_ids. HF's processor tokenizes the templated text with special tokens
 * added, so its ids start with two {@code <bos>}; the template's own encoding (the trainer's) has one, as HF's
 * {@code apply_chat_template(tokenize=True)}, and otherwise the same ids.
 */
class ImageChatGoldenTest {
    private static final int TOKENS = 256;

    @Test
    void imageConversationsMatchHfsProcessor() throws IOException {
        JsonNode golden;
        try (InputStream in = ImageChatGoldenTest.class.getResourceAsStream("/gemma3-mm-tiny/mm_chat_golden.json")) {
            golden = new ObjectMapper().readTree(in);
        }
        GemmaTokenizer tok = Tokenizers.gemma3();
        ChatTemplate template = new ChatTemplate(tok);
        int imageId = tok.encode(ChatTemplate.IMAGE_TOKEN)[0];
        assertEquals(1, tok.encode(ChatTemplate.IMAGE_TOKEN).length, "the image soft token is one added token");
        for (JsonNode g : golden) {
            List<Message> messages = new ArrayList<>();
            int images = 0;
            for (JsonNode m : g.get("messages")) {
                List<String> parts = new ArrayList<>();
                for (JsonNode p : m.get("content")) {
                    boolean image = p.get("type").asText().equals("image");
                    images += image ? 1 : 0;
                    parts.add(image ? null : p.get("text").asText());
                }
                messages.add(new Message(m.get("role").asText(), ChatTemplate.content(parts)));
            }
            String text = template.render(messages, GenerationPrompt.OMIT);
            assertEquals(g.get("text").asText(), text, "rendered text");
            assertEquals(images, ChatTemplate.countImages(text));
            assertEquals(images, g.get("pixel_values_shape").get(0).asInt(), "images in the processor's pixel_values");

            int[] expected = toInts(g.get("ids"));
            int[] processor = tok.encode(ChatTemplate.expandImages(text, TOKENS), GemmaTokenizer.Bos.ADD);
            assertArrayEquals(expected, processor, "the processor's ids");
            int[] types = Arrays.stream(processor).map(id -> id == imageId ? 1 : 0).toArray();
            assertArrayEquals(toInts(g.get("token_type_ids")), types, "token_type_ids");
            assertEquals(images * TOKENS, Arrays.stream(types).sum());

            int[] trainer = template.withImages(TOKENS).encode(messages, GenerationPrompt.OMIT).ids();
            assertArrayEquals(Arrays.copyOfRange(expected, 1, expected.length), trainer,
                    "the template's encoding: the processor's ids but for its second <bos>");
        }
    }

    private static int[] toInts(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asInt();
        }
        return out;
    }
}
