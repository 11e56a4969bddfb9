package dev.jtune.gemma.tokenizer;

import java.util.List;

/**
 * Finds added tokens in text as HF's AddedVocabulary does: an Aho-Corasick search with leftmost-longest semantics
 * (at the leftmost position where any token matches, the longest token), non-overlapping, left to right; then each
 * match's single_word / lstrip / rstrip flags are applied exactly as in {@code find_matches}. Here the automaton is
 * a trie walked from each position whose character can start a token, which gives the same matches: added tokens
 * are short and few characters start one ('<', '[', '\n', '\t', '▁' on Gemma 3).
 */
final class AddedTokenMatcher {
    private final AddedToken[] tokens;
    private final LongLongMap edges = new LongLongMap(1024); // (node << 16 | char) -> child node
    private int[] terminal = new int[64];                      // node -> index into tokens, or -1
    private int nodes = 1;
    private final boolean[] startChar = new boolean[65536];

    /** @param patterns the string to match for each token (its content, or its normalized content) */
    AddedTokenMatcher(List<AddedToken> tokens, List<String> patterns) {
        this.tokens = tokens.toArray(new AddedToken[0]);
        java.util.Arrays.fill(terminal, -1);
        for (int t = 0; t < patterns.size(); t++) {
            String p = patterns.get(t);
            if (p.isEmpty()) {
                continue;
            }
            startChar[p.charAt(0)] = true;
            int node = 0;
            for (int i = 0; i < p.length(); i++) {
                long key = ((long) node << 16) | p.charAt(i);
                long child = edges.get(key);
                if (child == LongLongMap.MISSING) {
                    child = nodes++;
                    edges.put(key, child);
                    if (nodes > terminal.length) {
                        int old = terminal.length;
                        terminal = java.util.Arrays.copyOf(terminal, old * 2);
                        java.util.Arrays.fill(terminal, old, terminal.length, -1);
                    }
                }
                node = (int) child;
            }
            if (terminal[node] < 0) { // the first of two identical patterns wins
                terminal[node] = t;
            }
        }
    }

    boolean isEmpty() {
        return nodes == 1;
    }

    /**
     * Splits {@code s[from, to)} into stretches, appending {@code (start, end, id)} triples to {@code out}:
     * {@code id} is the added token's id, or -1 for text between matches. Together they cover the range.
     */
    void split(String s, int from, int to, IntList out) {
        int startOffset = from;
        int i = from;
        while (i < to) {
            if (!startChar[s.charAt(i)]) {
                i++;
                continue;
            }
            int node = 0;
            int best = -1;
            int bestEnd = -1;
            for (int j = i; j < to; j++) {
                long child = edges.get(((long) node << 16) | s.charAt(j));
                if (child == LongLongMap.MISSING) {
                    break;
                }
                node = (int) child;
                if (terminal[node] >= 0) {
                    best = terminal[node];
                    bestEnd = j + 1;
                }
            }
            if (best < 0) {
                i++;
                continue;
            }
            AddedToken tok = tokens[best];
            int start = i;
            int stop = bestEnd;
            i = bestEnd; // the search goes on after this match even if it is discarded below, as find_iter does
            if (tok.singleWord()) {
                boolean startSpace = start == from || !isWordChar(s.codePointBefore(start));
                boolean stopSpace = stop == to || !isWordChar(s.codePointAt(stop));
                if (!startSpace || !stopSpace) {
                    continue;
                }
            }
            if (tok.lstrip()) {
                int newStart = start;
                while (newStart > from) {
                    int cp = s.codePointBefore(newStart);
                    if (!isWhiteSpace(cp)) {
                        break;
                    }
                    newStart -= Character.charCount(cp);
                }
                start = Math.max(newStart, startOffset);
            }
            if (tok.rstrip()) {
                while (stop < to) {
                    int cp = s.codePointAt(stop);
                    if (!isWhiteSpace(cp)) {
                        break;
                    }
                    stop += Character.charCount(cp);
                }
            }
            if (startOffset < start) {
                out.add(startOffset);
                out.add(start);
                out.add(-1);
            }
            out.add(start);
            out.add(stop);
            out.add(tok.id());
            startOffset = stop; // like HF, the search itself resumes at the match's end, not after rstrip
        }
        if (startOffset < to) {
            out.add(startOffset);
            out.add(to);
            out.add(-1);
        }
    }

    /** Rust regex {@code \w}: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control. */
    static boolean isWordChar(int cp) {
        if (Character.isAlphabetic(cp) || cp == 0x200C || cp == 0x200D) {
            return true;
        }
        int type = Character.getType(cp);
        return type == Character.NON_SPACING_MARK || type == Character.ENCLOSING_MARK
                || type == Character.COMBINING_SPACING_MARK || type == Character.DECIMAL_DIGIT_NUMBER
                || type == Character.CONNECTOR_PUNCTUATION;
    }

    /** Unicode White_Space (Rust regex {@code \s}). */
    static boolean isWhiteSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
                || cp == 0x205F || cp == 0x3000;
    }
}
