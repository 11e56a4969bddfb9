package dev.jtune.train.data;

import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.GemmaTokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** The real Gemma 3 tokenizer (this module's test copy), loaded once per JVM, and file helpers. */
final class TestData {
    private static GemmaTokenizer tokenizer;

    private TestData() {
    }

    static synchronized GemmaTokenizer tokenizer() {
        if (tokenizer == null) {
            tokenizer = GemmaTokenizer.bundled();
        }
        return tokenizer;
    }

    static ChatTemplate template() {
        return new ChatTemplate(tokenizer());
    }

    static Path write(Path dir, String name, String content) {
        try {
            return Files.writeString(dir.resolve(name), content, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** JSON lines from records, one per line. */
    static String jsonl(String... records) {
        return String.join("\n", records) + "\n";
    }

    /** A JSON array from records, one per line after the '[' line (record i starts on line i + 2). */
    static String array(String... records) {
        return "[\n" + String.join(",\n", records) + "\n]\n";
    }

    static String llava(String human, String gpt) {
        return "{\"id\": \"x\", \"conversations\": [{\"from\": \"human\", \"value\": " + q(human)
                + "}, {\"from\": \"gpt\", \"value\": " + q(gpt) + "}]}";
    }

    static String messages(String user, String assistant) {
        return "{\"messages\": [{\"role\": \"user\", \"content\": " + q(user)
                + "}, {\"role\": \"assistant\", \"content\": " + q(assistant) + "}]}";
    }

    static String q(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\t' -> sb.append("\\t");
                default -> sb.append(c);
            }
        }
        return sb.append('"').toString();
    }
}
