package dev.jtune.gemma.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The tokenizer.json "normalizer", applied to each stretch of text between added tokens (HF applies it before the
 * pre-tokenizer and the model). Gemma 3's is a single {@code Replace(" " -> "▁")}. Supported: Replace (String
 * pattern; a Regex pattern runs as a {@link java.util.regex.Pattern}), Prepend, Sequence, NFC/NFD/NFKC/NFKD,
 * Lowercase; anything else is rejected when the file is loaded.
 */
sealed interface Normalizer {
    String normalize(String s);

    Normalizer IDENTITY = new Sequence(List.of());

    record Replace(String pattern, String content) implements Normalizer {
        @Override
        public String normalize(String s) {
            if (pattern.length() == 1 && content.length() == 1) {
                return s.replace(pattern.charAt(0), content.charAt(0));
            }
            return s.replace(pattern, content);
        }
    }

    record RegexReplace(Pattern pattern, String content) implements Normalizer {
        @Override
        public String normalize(String s) {
            return pattern.matcher(s).replaceAll(Matcher.quoteReplacement(content));
        }
    }

    record Prepend(String prefix) implements Normalizer {
        @Override
        public String normalize(String s) {
            return s.isEmpty() ? s : prefix + s;
        }
    }

    record Unicode(java.text.Normalizer.Form form) implements Normalizer {
        @Override
        public String normalize(String s) {
            return java.text.Normalizer.normalize(s, form);
        }
    }

    record Lowercase() implements Normalizer {
        @Override
        public String normalize(String s) {
            return s.toLowerCase(Locale.ROOT);
        }
    }

    record Sequence(List<Normalizer> steps) implements Normalizer {
        @Override
        public String normalize(String s) {
            for (Normalizer n : steps) {
                s = n.normalize(s);
            }
            return s;
        }
    }

    /** @param node the JSON value (may be null / JSON null: no normalizer); @param path its JSON path, for errors */
    static Normalizer fromJson(JsonNode node, String path, String source) {
        if (node == null || node.isNull()) {
            return IDENTITY;
        }
        String type = Json.type(node, path, source);
        switch (type) {
            case "Replace": {
                JsonNode pattern = node.get("pattern");
                String content = Json.text(node, "content", path, source);
                if (pattern != null && pattern.has("String")) {
                    return new Replace(pattern.get("String").asText(), content);
                }
                if (pattern != null && pattern.has("Regex")) {
                    return new RegexReplace(Pattern.compile(pattern.get("Regex").asText()), content);
                }
                throw Json.error(source, path + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}, found " + pattern);
            }
            case "Prepend":
                return new Prepend(Json.text(node, "prepend", path, source));
            case "NFC":
                return new Unicode(java.text.Normalizer.Form.NFC);
            case "NFD":
                return new Unicode(java.text.Normalizer.Form.NFD);
            case "NFKC":
                return new Unicode(java.text.Normalizer.Form.NFKC);
            case "NFKD":
                return new Unicode(java.text.Normalizer.Form.NFKD);
            case "Lowercase":
                return new Lowercase();
            case "Sequence": {
                JsonNode list = node.get("normalizers");
                if (list == null || !list.isArray()) {
                    throw Json.error(source, path + ".normalizers", "expected an array");
                }
                List<Normalizer> steps = new ArrayList<>();
                for (int i = 0; i < list.size(); i++) {
                    steps.add(fromJson(list.get(i), path + ".normalizers[" + i + "]", source));
                }
                return new Sequence(List.copyOf(steps));
            }
            default:
                throw Json.unsupported(source, path, "normalizer", type,
                        "Replace, Prepend, Sequence, NFC, NFD, NFKC, NFKD, Lowercase");
        }
    }
}
