package dev.jtune.gemma.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The BPE model of a tokenizer.json, bit-for-bit HF tokenizers' {@code BPE::merge_word} + {@code Word::merge_all}:
 * <ol>
 * <li>each character becomes the vocabulary token for that character; a character with none becomes its UTF-8
 * bytes as {@code <0xNN>} tokens (byte_fallback), or else {@code unk} (consecutive unknowns fused into one with
 * fuse_unk);</li>
 * <li>then, repeatedly, the adjacent pair with the lowest merge rank is merged (ties: the leftmost), until no
 * adjacent pair has a merge. HF runs this with a binary heap of (rank, position) entries, skipping stale ones;
 * this class does the same for long words and, for short ones, an equivalent linear scan for the minimum (a stale
 * entry can never match: a pair at a position only changes by growing one of its sides, which changes the merged
 * token).</li>
 * </ol>
 * <b>Merges table</b>: a {@link LongLongMap} from {@code leftId << 32 | rightId} to {@code rank << 32 | mergedId}.
 * <p>
 * <b>Word splitting</b>: a pre-token is merged as one sequence, which on Gemma 3 means a whole line (its
 * pre-tokenizer never fires). To cache and to stay fast this class cuts a pre-token before a "▁" that follows a
 * character X when no vocabulary token contains "X▁" (X not "▁"): every token a merge creates contains the two
 * characters at its junction, so no merge can ever cross such a cut, and a min-rank process on two independent
 * halves pops each half's entries in the same order as on the whole. The result is identical to merging the whole
 * pre-token. On Gemma 3 exactly one token has a character before a "▁" ({@code ">▁</"}), so the cuts are the word
 * starts SentencePiece would use, except after '>'. Cutting is off where it could be unsafe: merges over byte
 * tokens, "▁" not in the vocabulary, or ignore_merges.
 * <p>
 * Words of up to {@value #CACHE_MAX_CHARS} chars are cached (thread-safe; cleared when it reaches
 * {@value #CACHE_CAPACITY} entries).
 */
final class BpeModel {
    static final char WORD_BOUNDARY = '\u2581';
    private static final int CACHE_MAX_CHARS = 64;
    private static final int CACHE_CAPACITY = 200_000;
    private static final int LINEAR_MAX_SYMBOLS = 24;

    private final String[] vocab;        // model vocabulary, id -> token
    private final VocabIndex index;
    private final int[] bmpIds = new int[65536];          // single-char token id for a BMP char, -1 if none
    private final LongLongMap supplementaryIds = new LongLongMap(1024);
    private final int[] byteIds = new int[256];
    private final LongLongMap merges;
    private final boolean byteFallback;
    private final boolean fuseUnk;
    private final boolean ignoreMerges;
    private final int unkId;             // -1: no unk token
    private final boolean splitWords;
    private final int[] joinsBoundary;   // sorted code points X with some token containing "X▁"
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>(4096);
    private final ThreadLocal<Scratch> scratch = ThreadLocal.withInitial(Scratch::new);

    /**
     * @param vocab            id -> token of the model vocabulary
     * @param merges           (leftId << 32 | rightId) -> (rank << 32 | mergedId)
     * @param mergesTouchBytes whether some merge has a {@code <0xNN>} token on a side
     * @param unkToken         the unk token string, or null
     */
    BpeModel(String[] vocab, VocabIndex index, LongLongMap merges, boolean mergesTouchBytes, boolean byteFallback,
             boolean fuseUnk, boolean ignoreMerges, String unkToken, String source) {
        this.vocab = vocab;
        this.index = index;
        this.byteFallback = byteFallback;
        this.fuseUnk = fuseUnk;
        this.ignoreMerges = ignoreMerges;
        if (unkToken != null) {
            unkId = index.get(unkToken);
            if (unkId < 0) {
                throw new TokenizerException(source + ": model.unk_token '" + unkToken + "' is not in model.vocab");
            }
        } else {
            unkId = -1;
        }
        Arrays.fill(bmpIds, -1);
        Arrays.fill(byteIds, -1);
        int[] boundary = new int[16];
        int boundaryCount = 0;
        for (int id = 0; id < vocab.length; id++) {
            String t = vocab[id];
            if (t == null) {
                continue;
            }
            int len = t.length();
            if (len == 1) {
                bmpIds[t.charAt(0)] = id;
            } else if (len == 2 && Character.isSurrogatePair(t.charAt(0), t.charAt(1))) {
                supplementaryIds.put(t.codePointAt(0), id);
            } else if (len == 6) {
                int b = Decoder.ByteFallback.byteOf(t);
                if (b >= 0 && t.equals(String.format("<0x%02X>", b))) {
                    byteIds[b] = id;
                }
            }
            for (int at = t.indexOf(WORD_BOUNDARY, 1); at > 0; at = t.indexOf(WORD_BOUNDARY, at + 1)) {
                char p = t.charAt(at - 1);
                if (p == WORD_BOUNDARY) {
                    continue;
                }
                int cp = t.codePointBefore(at);
                if (Arrays.binarySearch(boundary, 0, boundaryCount, cp) < 0) {
                    if (boundaryCount == boundary.length) {
                        boundary = Arrays.copyOf(boundary, boundaryCount * 2);
                    }
                    boundary[boundaryCount++] = cp;
                    Arrays.sort(boundary, 0, boundaryCount);
                }
            }
        }
        joinsBoundary = Arrays.copyOf(boundary, boundaryCount);

        this.merges = merges;
        splitWords = !ignoreMerges && !mergesTouchBytes && index.get(String.valueOf(WORD_BOUNDARY)) >= 0;
    }

    void clearCache() {
        cache.clear();
    }

    int mergeCount() {
        return merges.size();
    }

    /** Code points X for which some token contains "X▁" (so no cut before such a "▁"). */
    int[] boundaryJoiners() {
        return joinsBoundary.clone();
    }

    boolean splitsWords() {
        return splitWords;
    }

    /** Encodes one pre-token (normalized text), appending ids. */
    void encode(String s, IntList out) {
        int n = s.length();
        if (n == 0) {
            return;
        }
        if (!splitWords) {
            encodeWord(s, 0, n, out);
            return;
        }
        int start = 0;
        for (int i = 1; i < n; i++) {
            if (s.charAt(i) == WORD_BOUNDARY && s.charAt(i - 1) != WORD_BOUNDARY
                    && (joinsBoundary.length == 0 || Arrays.binarySearch(joinsBoundary, s.codePointBefore(i)) < 0)) {
                encodeWord(s, start, i, out);
                start = i;
            }
        }
        encodeWord(s, start, n, out);
    }

    /** Encodes {@code s[from, to)} as one BPE word. */
    void encodeWord(String s, int from, int to, IntList out) {
        int len = to - from;
        char c0 = s.charAt(from);
        if (len == 1 && bmpIds[c0] >= 0 && !ignoreMerges) {
            out.add(bmpIds[c0]);
            return;
        }
        if (len > CACHE_MAX_CHARS) {
            mergeWord(s, from, to, out);
            return;
        }
        String key = (from == 0 && to == s.length()) ? s : s.substring(from, to);
        int[] cached = cache.get(key);
        if (cached != null) {
            out.addAll(cached);
            return;
        }
        int before = out.size();
        mergeWord(s, from, to, out);
        int[] ids = new int[out.size() - before];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = out.get(before + i);
        }
        if (cache.size() >= CACHE_CAPACITY) {
            cache.clear();
        }
        cache.put(key, ids);
    }

    /** The uncached path: initial symbols, then merges. Package-private for tests. */
    void mergeWord(String s, int from, int to, IntList out) {
        if (ignoreMerges) {
            int whole = index.get(s.substring(from, to));
            if (whole >= 0) {
                out.add(whole);
                return;
            }
        }
        Scratch sc = scratch.get();
        int n = initialSymbols(s, from, to, sc);
        if (n <= LINEAR_MAX_SYMBOLS) {
            n = mergeLinear(sc.sym, n, sc);
            out.addAll(sc.sym, 0, n);
        } else {
            mergeHeap(sc, n, out);
        }
    }

    /** Same as {@link #mergeWord} but always with the heap (tests compare the two). */
    void mergeWordWithHeap(String s, IntList out) {
        Scratch sc = scratch.get();
        int n = initialSymbols(s, 0, s.length(), sc);
        mergeHeap(sc, n, out);
    }

    /** Same as {@link #mergeWord} but always with the linear scan (tests compare the two). */
    void mergeWordLinear(String s, IntList out) {
        Scratch sc = scratch.get();
        int n = initialSymbols(s, 0, s.length(), sc);
        n = mergeLinear(sc.sym, n, sc);
        out.addAll(sc.sym, 0, n);
    }

    private int charId(int cp) {
        if (cp < 65536) {
            return bmpIds[cp];
        }
        long v = supplementaryIds.get(cp);
        return v == LongLongMap.MISSING ? -1 : (int) v;
    }

    /** Fills {@code sc.sym} with the word's initial symbols (HF merge_word's loop); returns how many. */
    private int initialSymbols(String s, int from, int to, Scratch sc) {
        sc.ensure((to - from) * 4 + 1);
        int[] sym = sc.sym;
        int n = 0;
        int pendingUnk = 0; // 0: none, else a pending unk (fused run)
        for (int i = from; i < to; ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (Character.isSurrogate((char) cp) && cp < 65536) {
                cp = 0xFFFD; // a lone surrogate, which a Rust string cannot hold, is taken as U+FFFD
            }
            int id = charId(cp);
            if (id >= 0) {
                if (pendingUnk > 0) {
                    sym[n++] = unkId;
                    pendingUnk = 0;
                }
                sym[n++] = id;
                continue;
            }
            if (byteFallback) {
                byte[] utf8 = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8);
                boolean all = true;
                for (byte b : utf8) {
                    if (byteIds[b & 0xFF] < 0) {
                        all = false;
                        break;
                    }
                }
                if (all) {
                    // like HF, a pending unk is not flushed first (it can only be pending if some byte tokens are missing)
                    for (byte b : utf8) {
                        sym[n++] = byteIds[b & 0xFF];
                    }
                    continue;
                }
            }
            if (unkId < 0) {
                continue; // HF drops the character when there is no unk token
            }
            if (pendingUnk == 0) {
                pendingUnk = 1;
            } else if (!fuseUnk) {
                sym[n++] = unkId;
            }
        }
        if (pendingUnk > 0) {
            sym[n++] = unkId;
        }
        return n;
    }

    private long mergeOf(int a, int b) {
        return merges.get(((long) a << 32) | (b & 0xFFFFFFFFL));
    }

    /** Repeatedly merges the lowest-rank (then leftmost) adjacent pair; returns the new length. */
    private int mergeLinear(int[] sym, int n, Scratch sc) {
        if (n < 2) {
            return n;
        }
        long[] pair = sc.pair;
        for (int i = 0; i < n - 1; i++) {
            pair[i] = mergeOf(sym[i], sym[i + 1]);
        }
        while (n > 1) {
            int best = -1;
            long bestRank = Long.MAX_VALUE;
            for (int i = 0; i < n - 1; i++) {
                long v = pair[i];
                if (v >= 0 && (v >>> 32) < bestRank) {
                    bestRank = v >>> 32;
                    best = i;
                }
            }
            if (best < 0) {
                break;
            }
            sym[best] = (int) pair[best];
            System.arraycopy(sym, best + 2, sym, best + 1, n - best - 2);
            System.arraycopy(pair, best + 2, pair, best + 1, n - best - 3 > 0 ? n - best - 3 : 0);
            n--;
            if (best > 0) {
                pair[best - 1] = mergeOf(sym[best - 1], sym[best]);
            }
            if (best < n - 1) {
                pair[best] = mergeOf(sym[best], sym[best + 1]);
            }
        }
        return n;
    }

    /** HF's Word::merge_all over a linked list of symbols and a min-heap of (rank, position, mergedId). */
    private void mergeHeap(Scratch sc, int n, IntList out) {
        int[] sym = sc.sym;
        int[] prev = sc.prev;
        int[] next = sc.next;
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        sc.heapSize = 0;
        for (int i = 0; i < n - 1; i++) {
            long v = mergeOf(sym[i], sym[i + 1]);
            if (v >= 0) {
                sc.push(((v >>> 32) << 32) | i, (int) v);
            }
        }
        while (sc.heapSize > 0) {
            long key = sc.heapKey[0];
            int newId = sc.heapVal[0];
            sc.pop();
            int pos = (int) key;
            if (sym[pos] < 0) {
                continue; // removed
            }
            int right = next[pos];
            if (right < 0) {
                continue; // last symbol
            }
            long v = mergeOf(sym[pos], sym[right]);
            if (v < 0 || (int) v != newId) {
                continue; // stale entry
            }
            sym[pos] = newId;
            sym[right] = -1;
            int rn = next[right];
            next[pos] = rn;
            if (rn >= 0) {
                prev[rn] = pos;
            }
            int p = prev[pos];
            if (p >= 0) {
                long pv = mergeOf(sym[p], sym[pos]);
                if (pv >= 0) {
                    sc.push(((pv >>> 32) << 32) | p, (int) pv);
                }
            }
            if (rn >= 0) {
                long nv = mergeOf(sym[pos], sym[rn]);
                if (nv >= 0) {
                    sc.push(((nv >>> 32) << 32) | pos, (int) nv);
                }
            }
        }
        for (int i = 0; i >= 0; i = next[i]) {
            out.add(sym[i]);
        }
    }

    /** Per-thread work arrays. */
    private static final class Scratch {
        int[] sym = new int[256];
        int[] prev = new int[256];
        int[] next = new int[256];
        long[] pair = new long[256];
        long[] heapKey = new long[768];
        int[] heapVal = new int[768];
        int heapSize;

        void ensure(int n) {
            if (sym.length < n) {
                int cap = Integer.highestOneBit(n - 1) << 1;
                sym = new int[cap];
                prev = new int[cap];
                next = new int[cap];
                pair = new long[cap];
                heapKey = new long[cap * 3];
                heapVal = new int[cap * 3];
            }
        }

        void push(long key, int val) {
            if (heapSize == heapKey.length) {
                heapKey = Arrays.copyOf(heapKey, heapSize * 2);
                heapVal = Arrays.copyOf(heapVal, heapSize * 2);
            }
            int i = heapSize++;
            while (i > 0) {
                int parent = (i - 1) >>> 1;
                if (heapKey[parent] <= key) {
                    break;
                }
                heapKey[i] = heapKey[parent];
                heapVal[i] = heapVal[parent];
                i = parent;
            }
            heapKey[i] = key;
            heapVal[i] = val;
        }

        void pop() {
            int last = --heapSize;
            if (last == 0) {
                return;
            }
            long key = heapKey[last];
            int val = heapVal[last];
            int i = 0;
            while (true) {
                int c = 2 * i + 1;
                if (c >= last) {
                    break;
                }
                if (c + 1 < last && heapKey[c + 1] < heapKey[c]) {
                    c++;
                }
                if (heapKey[c] >= key) {
                    break;
                }
                heapKey[i] = heapKey[c];
                heapVal[i] = heapVal[c];
                i = c;
            }
            heapKey[i] = key;
            heapVal[i] = val;
        }
    }
}
