package dev.jtune.gemma.tokenizer;

/**
 * Token string -> id for the model vocabulary, built for the 1.5 million look-ups a tokenizer.json's merges need
 * at load time (memory-bound: each is a random access into a table of several MB).
 * <p>
 * Each string has a 64-bit polynomial hash ({@code h = h * M + c}, so {@code hash(a + b) = hash(a) * M^|b| +
 * hash(b)}: the merged token of a merge is looked up without building it), finalised by a 64-bit mixer. The
 * open-addressing table holds {@code tag << 20 | (id + 1)} in one {@code long}, where the tag is the top 44 bits
 * of the mixed hash and the slot comes from its low bits. When all vocabulary tags are distinct (checked when the
 * table is built; true of Gemma 3's 262,144 tokens) a string that <i>is</i> in the vocabulary is identified by its
 * tag alone, so the merge look-ups ({@link #find}, {@link #getConcat}) skip comparing characters, which halves
 * their cost. Their strings are in the vocabulary in every valid file; for a corrupt one a missing string would go
 * unnoticed only if its 44-bit tag equalled a token's met on its probe path (odds about 2^-40).
 * {@link #get(String)} always compares characters. With a tag collision in the vocabulary, or more than 2^20 - 1
 * tokens, every look-up compares characters (all token characters are kept in one {@code char[]} pool).
 */
final class VocabIndex {
    private static final long M = 0x9E3779B97F4A7C15L;
    private static final int ID_BITS = 20;
    private static final long ID_MASK = (1L << ID_BITS) - 1;

    private final char[] pool;
    private final int[] start;    // id -> offset in pool; start[n] = pool length
    private final long[] hashes;  // id -> raw polynomial hash
    private final long[] table;   // tag << 20 | (id + 1); 0 = empty
    private final int mask;
    private final long[] powM;    // M^n for n <= longest token
    private final boolean verify; // compare characters on every look-up

    /** @param tokens id -> token; no nulls */
    VocabIndex(String[] tokens) {
        int n = tokens.length;
        start = new int[n + 1];
        int total = 0;
        int maxLen = 0;
        for (int id = 0; id < n; id++) {
            start[id] = total;
            int len = tokens[id].length();
            total += len;
            maxLen = Math.max(maxLen, len);
        }
        start[n] = total;
        pool = new char[total];
        for (int id = 0; id < n; id++) {
            tokens[id].getChars(0, tokens[id].length(), pool, start[id]);
        }
        hashes = new long[n];
        int cap = Integer.highestOneBit(Math.max(4, n * 2 - 1)) << 1;
        table = new long[cap];
        mask = cap - 1;
        boolean tagsDistinct = n < ID_MASK;
        for (int id = 0; id < n; id++) {
            int s = start[id];
            int len = start[id + 1] - s;
            long h = hash(pool, s, len);
            hashes[id] = h;
            long mixed = mix(h);
            long tag = mixed >>> ID_BITS;
            int i = (int) mixed & mask;
            boolean duplicate = false;
            while (table[i] != 0) {
                long e = table[i];
                if (e >>> ID_BITS == tag) {
                    int other = (int) (e & ID_MASK) - 1;
                    if (equalsPool(other, pool, s, len)) {
                        duplicate = true; // a duplicate string keeps its first id (JSON object keys are unique anyway)
                        break;
                    }
                    tagsDistinct = false;
                }
                i = (i + 1) & mask;
            }
            if (!duplicate) {
                table[i] = (tag << ID_BITS) | (id + 1);
            }
        }
        verify = !tagsDistinct;
        powM = new long[maxLen + 1];
        powM[0] = 1;
        for (int i = 1; i <= maxLen; i++) {
            powM[i] = powM[i - 1] * M;
        }
    }

    private static long hash(char[] buf, int off, int len) {
        long h = 0;
        for (int k = off, end = off + len; k < end; k++) {
            h = h * M + buf[k];
        }
        return h;
    }

    /** MurmurHash3's fmix64: a bijection that spreads every input bit over the output. */
    private static long mix(long k) {
        k ^= k >>> 33;
        k *= 0xff51afd7ed558ccdL;
        k ^= k >>> 33;
        k *= 0xc4ceb9fe1a85ec53L;
        k ^= k >>> 33;
        return k;
    }

    int size() {
        return hashes.length;
    }

    /** Whether look-ups compare characters (a tag collision in the vocabulary, or a huge vocabulary). */
    boolean verifying() {
        return verify;
    }

    private boolean equalsPool(int id, char[] buf, int off, int len) {
        int s = start[id];
        if (start[id + 1] - s != len) {
            return false;
        }
        for (int k = 0; k < len; k++) {
            if (pool[s + k] != buf[off + k]) {
                return false;
            }
        }
        return true;
    }

    private int probe(long h, char[] buf, int off, int len, boolean check) {
        long mixed = mix(h);
        long tag = mixed >>> ID_BITS;
        int i = (int) mixed & mask;
        while (true) {
            long e = table[i];
            if (e == 0) {
                return -1;
            }
            if (e >>> ID_BITS == tag) {
                int id = (int) (e & ID_MASK) - 1;
                if (!check || equalsPool(id, buf, off, len)) {
                    return id;
                }
            }
            i = (i + 1) & mask;
        }
    }

    /** @return the id of {@code s}, or -1 (always compares characters) */
    int get(String s) {
        char[] c = s.toCharArray();
        return probe(hash(c, 0, c.length), c, 0, c.length, true);
    }

    /** @return the id of the string {@code buf[off, off+len)}, or -1; see the class comment on verification */
    int find(char[] buf, int off, int len) {
        return probe(hash(buf, off, len), buf, off, len, verify);
    }

    /** @return the id of the token {@code token(a) + token(b)}, or -1; see the class comment on verification */
    int getConcat(int a, int b) {
        int la = start[a + 1] - start[a];
        int lb = start[b + 1] - start[b];
        if (la + lb >= powM.length) {
            return -1; // longer than any token
        }
        long h = hashes[a] * powM[lb] + hashes[b];
        if (!verify) {
            return probe(h, null, 0, 0, false);
        }
        char[] ab = new char[la + lb];
        System.arraycopy(pool, start[a], ab, 0, la);
        System.arraycopy(pool, start[b], ab, la, lb);
        return probe(h, ab, 0, la + lb, true);
    }
}
