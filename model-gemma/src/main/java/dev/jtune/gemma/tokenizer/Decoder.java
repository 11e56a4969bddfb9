package dev.jtune.gemma.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The tokenizer.json "decoder", a chain over the token strings as HF's {@code decode_chain}: Gemma 3's is
 * {@code Sequence[Replace("▁" -> " "), ByteFallback, Fuse]}. Supported: Replace (String pattern), ByteFallback,
 * Fuse, Strip, Sequence.
 */
sealed interface Decoder {
    List<String> decodeChain(List<String> tokens);

    record Replace(String pattern, String content) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (String t : tokens) {
                out.add(t.replace(pattern, content));
            }
            return out;
        }
    }

    /**
     * Runs of {@code <0xNN>} tokens become the string their bytes spell in UTF-8; a run that is not valid UTF-8
     * becomes one U+FFFD per byte (HF's behaviour, not Java's decoder's replacement scheme).
     */
    record ByteFallback() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            for (String t : tokens) {
                int b = byteOf(t);
                if (b >= 0) {
                    bytes.write(b);
                    continue;
                }
                flush(bytes, out);
                out.add(t);
            }
            flush(bytes, out);
            return out;
        }

        private static void flush(ByteArrayOutputStream bytes, List<String> out) {
            if (bytes.size() == 0) {
                return;
            }
            byte[] b = bytes.toByteArray();
            bytes.reset();
            try {
                out.add(StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(b)).toString());
            } catch (CharacterCodingException e) {
                for (int i = 0; i < b.length; i++) {
                    out.add("\uFFFD");
                }
            }
        }

        /** The byte of a {@code <0xNN>} token (6 bytes, Rust's u8::from_str_radix on the two characters), else -1. */
        static int byteOf(String t) {
            if (t.length() != 6 || !t.startsWith("<0x") || t.charAt(5) != '>') {
                return -1;
            }
            char c1 = t.charAt(3);
            char c2 = t.charAt(4);
            int d2 = Character.digit(c2, 16);
            if (d2 < 0 || c2 > 'f') {
                return -1;
            }
            if (c1 == '+') { // from_str_radix accepts a leading '+'
                return d2;
            }
            int d1 = Character.digit(c1, 16);
            if (d1 < 0 || c1 > 'f') {
                return -1;
            }
            return d1 * 16 + d2;
        }
    }

    record Fuse() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            return List.of(String.join("", tokens));
        }
    }

    /** Removes up to {@code start} leading and {@code stop} trailing {@code content} characters from each token. */
    record Strip(int content, int start, int stop) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (String t : tokens) {
                int[] cps = t.codePoints().toArray();
                int from = 0;
                for (int i = 0; i < Math.min(start, cps.length); i++) {
                    if (cps[i] != content) {
                        break;
                    }
                    from = i + 1;
                }
                int to = cps.length;
                for (int i = 0; i < stop && cps.length - i - 1 >= 0; i++) {
                    int index = cps.length - i - 1;
                    if (cps[index] != content) {
                        break;
                    }
                    to = index;
                }
                out.add(from >= to ? "" : new String(cps, from, to - from));
            }
            return out;
        }
    }

    record Sequence(List<Decoder> steps) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            for (Decoder d : steps) {
                tokens = d.decodeChain(tokens);
            }
            return tokens;
        }
    }

    /** @return the decoder, or null where the file has none (HF then joins the tokens with spaces) */
    static Decoder fromJson(JsonNode node, String path, String source) {
        if (node == null || node.isNull()) {
            return null;
        }
        String type = Json.type(node, path, source);
        switch (type) {
            case "Replace": {
                JsonNode pattern = node.get("pattern");
                if (pattern == null || !pattern.has("String")) {
                    throw Json.error(source, path + ".pattern", "only {\"String\": ...} patterns are supported in a Replace decoder, found " + pattern);
                }
                return new Replace(pattern.get("String").asText(), Json.text(node, "content", path, source));
            }
            case "ByteFallback":
                return new ByteFallback();
            case "Fuse":
                return new Fuse();
            case "Strip": {
                String c = Json.text(node, "content", path, source);
                if (c.codePointCount(0, c.length()) != 1) {
                    throw Json.error(source, path + ".content", "expected one character, found '" + c + "'");
                }
                return new Strip(c.codePointAt(0), node.path("start").asInt(0), node.path("stop").asInt(0));
            }
            case "Sequence": {
                JsonNode list = node.get("decoders");
                if (list == null || !list.isArray()) {
                    throw Json.error(source, path + ".decoders", "expected an array");
                }
                List<Decoder> steps = new ArrayList<>();
                for (int i = 0; i < list.size(); i++) {
                    steps.add(fromJson(list.get(i), path + ".decoders[" + i + "]", source));
                }
                return new Sequence(List.copyOf(steps));
            }
            default:
                throw Json.unsupported(source, path, "decoder", type, "Replace, ByteFallback, Fuse, Strip, Sequence");
        }
    }
}
