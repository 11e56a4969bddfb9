package dev.jtune.gemma.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The tokenizer.json "pre_tokenizer": splits normalized text into the pieces the model encodes independently.
 * Gemma 3's is {@code Split(" ", MergedWithPrevious)}; it runs after the normalizer has replaced every space by
 * "▁", so on Gemma it never finds anything and each stretch between added tokens reaches BPE whole (which is what
 * HF does too). Supported: Split (String pattern, or Regex as a {@link java.util.regex.Pattern}; not inverted) with
 * all five delimiter behaviours, and Sequence.
 */
sealed interface PreTokenizer {
    /** Appends the non-empty pieces of {@code s} to {@code out}. */
    void split(String s, List<String> out);

    PreTokenizer NONE = new Sequence(List.of());

    enum Behavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS }

    record Split(String literal, Pattern regex, Behavior behavior) implements PreTokenizer {
        @Override
        public void split(String s, List<String> out) {
            // matches as (start, end) pairs, non-overlapping, left to right
            List<int[]> matches = new ArrayList<>();
            if (regex != null) {
                Matcher m = regex.matcher(s);
                while (m.find()) {
                    if (m.end() > m.start()) {
                        matches.add(new int[] {m.start(), m.end()});
                    }
                }
            } else if (!literal.isEmpty()) {
                int from = 0;
                int at;
                while ((at = s.indexOf(literal, from)) >= 0) {
                    matches.add(new int[] {at, at + literal.length()});
                    from = at + literal.length();
                }
            }
            if (matches.isEmpty()) {
                if (!s.isEmpty()) {
                    out.add(s);
                }
                return;
            }
            // the whole string as (start, end, isMatch) runs
            List<int[]> runs = new ArrayList<>();
            int pos = 0;
            for (int[] m : matches) {
                if (m[0] > pos) {
                    runs.add(new int[] {pos, m[0], 0});
                }
                runs.add(new int[] {m[0], m[1], 1});
                pos = m[1];
            }
            if (pos < s.length()) {
                runs.add(new int[] {pos, s.length(), 0});
            }
            List<int[]> pieces = new ArrayList<>();
            switch (behavior) {
                case REMOVED -> {
                    for (int[] r : runs) {
                        if (r[2] == 0) {
                            pieces.add(r);
                        }
                    }
                }
                case ISOLATED -> pieces.addAll(runs);
                case CONTIGUOUS -> {
                    boolean previousMatch = false;
                    for (int[] r : runs) {
                        if (r[2] == 1 && previousMatch) {
                            pieces.get(pieces.size() - 1)[1] = r[1];
                        } else {
                            pieces.add(r.clone());
                        }
                        previousMatch = r[2] == 1;
                    }
                }
                case MERGED_WITH_PREVIOUS -> {
                    boolean previousMatch = false;
                    for (int[] r : runs) {
                        if (r[2] == 1 && !previousMatch && !pieces.isEmpty()) {
                            pieces.get(pieces.size() - 1)[1] = r[1];
                        } else {
                            pieces.add(r.clone());
                        }
                        previousMatch = r[2] == 1;
                    }
                }
                case MERGED_WITH_NEXT -> {
                    boolean previousMatch = false; // scanning right to left
                    List<int[]> rev = new ArrayList<>();
                    for (int i = runs.size() - 1; i >= 0; i--) {
                        int[] r = runs.get(i);
                        if (r[2] == 1 && !previousMatch && !rev.isEmpty()) {
                            rev.get(rev.size() - 1)[0] = r[0];
                        } else {
                            rev.add(r.clone());
                        }
                        previousMatch = r[2] == 1;
                    }
                    for (int i = rev.size() - 1; i >= 0; i--) {
                        pieces.add(rev.get(i));
                    }
                }
            }
            for (int[] p : pieces) {
                if (p[1] > p[0]) {
                    out.add(s.substring(p[0], p[1]));
                }
            }
        }
    }

    record Sequence(List<PreTokenizer> steps) implements PreTokenizer {
        @Override
        public void split(String s, List<String> out) {
            if (steps.isEmpty()) {
                if (!s.isEmpty()) {
                    out.add(s);
                }
                return;
            }
            List<String> current = List.of(s);
            for (PreTokenizer step : steps) {
                List<String> next = new ArrayList<>();
                for (String piece : current) {
                    step.split(piece, next);
                }
                current = next;
            }
            out.addAll(current);
        }
    }

    static PreTokenizer fromJson(JsonNode node, String path, String source) {
        if (node == null || node.isNull()) {
            return NONE;
        }
        String type = Json.type(node, path, source);
        switch (type) {
            case "Split": {
                JsonNode pattern = node.get("pattern");
                String literal = null;
                Pattern regex = null;
                if (pattern != null && pattern.has("String")) {
                    literal = pattern.get("String").asText();
                } else if (pattern != null && pattern.has("Regex")) {
                    regex = Pattern.compile(pattern.get("Regex").asText());
                } else {
                    throw Json.error(source, path + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}, found " + pattern);
                }
                if (node.path("invert").asBoolean(false)) {
                    throw Json.error(source, path + ".invert", "an inverted Split pre-tokenizer is not supported");
                }
                String b = Json.text(node, "behavior", path, source);
                Behavior behavior = switch (b) {
                    case "Removed" -> Behavior.REMOVED;
                    case "Isolated" -> Behavior.ISOLATED;
                    case "MergedWithPrevious" -> Behavior.MERGED_WITH_PREVIOUS;
                    case "MergedWithNext" -> Behavior.MERGED_WITH_NEXT;
                    case "Contiguous" -> Behavior.CONTIGUOUS;
                    default -> throw Json.error(source, path + ".behavior", "unknown split behavior '" + b + "'");
                };
                return new Split(literal, regex, behavior);
            }
            case "Sequence": {
                JsonNode list = node.get("pretokenizers");
                if (list == null || !list.isArray()) {
                    throw Json.error(source, path + ".pretokenizers", "expected an array");
                }
                List<PreTokenizer> steps = new ArrayList<>();
                for (int i = 0; i < list.size(); i++) {
                    steps.add(fromJson(list.get(i), path + ".pretokenizers[" + i + "]", source));
                }
                return new Sequence(List.copyOf(steps));
            }
            default:
                throw Json.unsupported(source, path, "pre-tokenizer", type, "Split, Sequence");
        }
    }
}
