package dev.jtune.gemma.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

/** Small helpers for reading tokenizer.json components with errors that say where. */
final class Json {
    private Json() {
    }

    static TokenizerException error(String source, String path, String message) {
        return new TokenizerException(source + ": " + path + ": " + message);
    }

    static TokenizerException unsupported(String source, String path, String what, String found, String supported) {
        return new TokenizerException(source + ": unsupported " + what + " type '" + found + "' at " + path
                + " (supported: " + supported + ")");
    }

    static String type(JsonNode node, String path, String source) {
        JsonNode t = node.get("type");
        if (t == null || !t.isTextual()) {
            throw error(source, path + ".type", "missing or not a string (found " + node + ")");
        }
        return t.asText();
    }

    static String text(JsonNode node, String field, String path, String source) {
        JsonNode t = node.get(field);
        if (t == null || !t.isTextual()) {
            throw error(source, path + "." + field, "missing or not a string (found " + t + ")");
        }
        return t.asText();
    }
}
