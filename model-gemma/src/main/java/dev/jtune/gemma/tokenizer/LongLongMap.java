package dev.jtune.gemma.tokenizer;

import java.util.Arrays;

/**
 * Open-addressing (linear probing) map from non-negative {@code long} keys to non-negative {@code long} values,
 * without boxing. Used for the BPE merges table (key {@code leftId << 32 | rightId}, value
 * {@code rank << 32 | mergedId}), supplementary-plane characters and the added-token trie's edges.
 * Not thread-safe for writes; safe to read concurrently once built.
 */
final class LongLongMap {
    static final long MISSING = -1L;
    private static final long EMPTY = -1L;

    private long[] slots; // key at 2i, value at 2i+1: a probe touches one cache line
    private int mask;
    private int shift;
    private int size;

    LongLongMap(int expected) {
        int cap = Integer.highestOneBit(Math.max(4, expected * 2 - 1)) << 1; // load factor <= 0.5
        allocate(cap);
    }

    private void allocate(int cap) {
        slots = new long[cap * 2];
        Arrays.fill(slots, EMPTY);
        mask = cap - 1;
        shift = 64 - Integer.numberOfTrailingZeros(cap);
    }

    private int slot(long key) {
        return (int) ((key * 0x9E3779B97F4A7C15L) >>> shift);
    }

    /** Inserts or replaces; returns the previous value or {@link #MISSING}. */
    long put(long key, long value) {
        if (key < 0 || value < 0) {
            throw new IllegalArgumentException("keys and values must be non-negative: " + key + " -> " + value);
        }
        if ((size + 1) * 4 > slots.length) {
            grow();
        }
        long[] s = slots;
        int i = slot(key);
        while (true) {
            long k = s[2 * i];
            if (k == EMPTY) {
                s[2 * i] = key;
                s[2 * i + 1] = value;
                size++;
                return MISSING;
            }
            if (k == key) {
                long old = s[2 * i + 1];
                s[2 * i + 1] = value;
                return old;
            }
            i = (i + 1) & mask;
        }
    }

    long get(long key) {
        long[] s = slots;
        int m = mask;
        int i = slot(key);
        while (true) {
            long k = s[2 * i];
            if (k == key) {
                return s[2 * i + 1];
            }
            if (k == EMPTY) {
                return MISSING;
            }
            i = (i + 1) & m;
        }
    }

    int size() {
        return size;
    }

    private void grow() {
        long[] old = slots;
        allocate(old.length); // twice the slots: old.length / 2 entries before
        size = 0;
        for (int i = 0; i < old.length; i += 2) {
            if (old[i] != EMPTY) {
                put(old[i], old[i + 1]);
            }
        }
    }
}
