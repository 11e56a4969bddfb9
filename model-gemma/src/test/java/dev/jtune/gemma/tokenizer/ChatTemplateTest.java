package dev.jtune.gemma.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.gemma.tokenizer.ChatTemplate.ChatFormatException;
import dev.jtune.gemma.tokenizer.ChatTemplate.GenerationPrompt;
import dev.jtune.gemma.tokenizer.ChatTemplate.Message;
import dev.jtune.gemma.tokenizer.ChatTemplate.Rendered;
import dev.jtune.gemma.tokenizer.GemmaTokenizer.Bos;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Gemma 3 chat template against HF transformers' apply_chat_template output (chat_golden.json). */
class ChatTemplateTest {
    static GemmaTokenizer tok;
    static ChatTemplate chat;
    static JsonNode golden;

    @BeforeAll
    static void load() throws IOException {
        tok = Tokenizers.gemma3();
        chat = new ChatTemplate(tok);
        try (InputStream in = ChatTemplateTest.class.getResourceAsStream("/tokenizer/chat_golden.json")) {
            golden = new ObjectMapper().readTree(in);
        }
    }

    static List<Message> messages(JsonNode conv) {
        List<Message> ms = new ArrayList<>();
        for (JsonNode m : conv.get("messages")) {
            ms.add(new Message(m.get("role").asText(), m.get("content").asText()));
        }
        return ms;
    }

    @Test
    void goldenConversations() {
        assertEquals(3, golden.size());
        for (JsonNode conv : golden) {
            List<Message> ms = messages(conv);
            String text = conv.get("text").asText();
            assertEquals(text, chat.render(ms, GenerationPrompt.OMIT));
            assertEquals(conv.get("generation_prompt_text").asText(), chat.render(ms.subList(0, ms.size() - 1), GenerationPrompt.ADD));
            int[] ids = GemmaTokenizerTest.ints(conv.get("ids"));
            Rendered r = chat.encode(ms, GenerationPrompt.OMIT);
            assertArrayEquals(ids, r.ids());
            assertArrayEquals(ids, chat.tokenizeRendered(text), "a leading <bos> in the text is not doubled");
            assertArrayEquals(ids, tok.encode(text.substring("<bos>".length()), Bos.ADD));
        }
    }

    /** The official template text is the one this class implements (a changed template would need new code). */
    @Test
    void templateIsTheOfficialOne() throws IOException {
        JsonNode config;
        try (InputStream in = ChatTemplateTest.class.getResourceAsStream("/tokenizer/gemma3-tokenizer_config.json")) {
            config = new ObjectMapper().readTree(in);
        }
        String template = config.get("chat_template").asText();
        assertTrue(template.startsWith("{{ bos_token }}"));
        assertTrue(template.contains("set first_user_prefix = messages[0]['content'] + '\n\n'"));
        assertTrue(template.contains("(message['role'] == 'user') != (loop.index0 % 2 == 0)"));
        assertTrue(template.contains("{{ message['content'] | trim }}"));
        assertTrue(template.contains("{{'<start_of_turn>model\n'}}"));
        assertEquals("<bos>", config.get("bos_token").asText());
        assertEquals("<end_of_turn>", config.get("eos_token").asText());
    }

    @Test
    void maskCoversExactlyTheModelTurns() {
        List<Message> ms = List.of(
                Message.system("Be brief."),
                Message.user("What is 2+2?"),
                Message.assistant("4"),
                Message.user("And 3+3?\n\nThink  twice."),
                Message.assistant("  6, after\n\nthinking twice.  "),
                Message.user("Thanks"),
                Message.assistant("You're welcome! 😀"));
        Rendered r = chat.encode(ms, GenerationPrompt.OMIT);
        assertEquals(r.ids().length, r.trainMask().length);
        // the masked ids, turn by turn
        List<String> trainedRuns = new ArrayList<>();
        List<Integer> run = new ArrayList<>();
        for (int i = 0; i <= r.ids().length; i++) {
            if (i < r.ids().length && r.trainMask()[i]) {
                run.add(r.ids()[i]);
            } else if (!run.isEmpty()) {
                trainedRuns.add(tok.decode(run.stream().mapToInt(Integer::intValue).toArray()));
                run.clear();
            }
        }
        assertEquals(List.of("4<end_of_turn>", "6, after\n\nthinking twice.<end_of_turn>", "You're welcome! 😀<end_of_turn>"),
                trainedRuns);
        // each trained run is followed by the untrained "\n" and preceded by the untrained model header
        int[] ids = r.ids();
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] == tok.endOfTurnId()) {
                boolean modelTurn = r.trainMask()[i];
                assertFalse(r.trainMask()[i + 1], "the \\n after <end_of_turn> is not trained");
                assertEquals(107, ids[i + 1]);
                if (!modelTurn) {
                    assertFalse(r.trainMask()[i - 1], "user content is not trained");
                }
            }
        }
        assertFalse(r.trainMask()[0], "<bos>");
        int expected = tok.encode("4").length + tok.encode("6, after\n\nthinking twice.").length
                + tok.encode("You're welcome! 😀").length + 3;
        assertEquals(expected, r.trainedCount());
    }

    @Test
    void generationPromptIsNotTrained() {
        Rendered r = chat.encode(List.of(Message.user("Hi")), GenerationPrompt.ADD);
        assertEquals("<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", tok.decode(r.ids()));
        assertEquals(0, r.trainedCount());
    }

    @Test
    void modelRoleIsASynonymAndContentsAreTrimmedLikePython() {
        String a = chat.render(List.of(Message.user("\u00a0 hi \u3000"), new Message("model", "\u2003ok\u001f")), GenerationPrompt.OMIT);
        assertEquals("<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nok<end_of_turn>\n", a);
        // zero-width space is not whitespace for Python's strip()
        assertEquals("\u200bx", ChatTemplate.pythonStrip(" \u200bx\n"));
        // the system content is not trimmed, only the user content after it
        assertEquals("<bos><start_of_turn>user\n sys \n\nu<end_of_turn>\n",
                chat.render(List.of(Message.system(" sys "), Message.user(" u ")), GenerationPrompt.OMIT));
    }

    @Test
    void specialMarkersInsideContentAreTokenizedAsSpecial() {
        // as HF: the rendered text is tokenized with special tokens recognised
        Rendered r = chat.encode(List.of(Message.user("say <end_of_turn>"), Message.assistant("no")), GenerationPrompt.OMIT);
        long eot = Arrays.stream(r.ids()).filter(id -> id == tok.endOfTurnId()).count();
        assertEquals(3, eot);
    }

    @Test
    void alternationErrorsNameTheMessage() {
        ChatFormatException e = assertThrows(ChatFormatException.class,
                () -> chat.render(List.of(Message.user("a"), Message.user("b")), GenerationPrompt.OMIT));
        assertTrue(e.getMessage().contains("message 1") && e.getMessage().contains("'user'")
                && e.getMessage().contains("'assistant' was expected"), e.getMessage());

        e = assertThrows(ChatFormatException.class,
                () -> chat.render(List.of(Message.system("s"), Message.assistant("a")), GenerationPrompt.OMIT));
        assertTrue(e.getMessage().contains("message 1") && e.getMessage().contains("'assistant'")
                && e.getMessage().contains("'user' was expected"), e.getMessage());

        e = assertThrows(ChatFormatException.class,
                () -> chat.render(List.of(Message.user("a"), Message.assistant("b"), Message.system("c")), GenerationPrompt.OMIT));
        assertTrue(e.getMessage().contains("message 2") && e.getMessage().contains("only allowed as message 0"),
                e.getMessage());

        e = assertThrows(ChatFormatException.class,
                () -> chat.render(List.of(Message.user("a"), new Message("tool", "b")), GenerationPrompt.OMIT));
        assertTrue(e.getMessage().contains("message 1") && e.getMessage().contains("'tool'"), e.getMessage());

        e = assertThrows(ChatFormatException.class, () -> chat.render(List.of(), GenerationPrompt.OMIT));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
        assertThrows(ChatFormatException.class, () -> chat.encode(List.of(Message.assistant("a")), GenerationPrompt.OMIT));
    }
}
