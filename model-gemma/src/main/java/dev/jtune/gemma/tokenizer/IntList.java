package dev.jtune.gemma.tokenizer;

import java.util.Arrays;

/** A growable {@code int[]}. */
final class IntList {
    private int[] data;
    private int size;

    IntList(int capacity) {
        data = new int[Math.max(4, capacity)];
    }

    void add(int v) {
        if (size == data.length) {
            data = Arrays.copyOf(data, data.length * 2);
        }
        data[size++] = v;
    }

    void addAll(int[] vs) {
        ensure(size + vs.length);
        System.arraycopy(vs, 0, data, size, vs.length);
        size += vs.length;
    }

    void addAll(int[] vs, int from, int to) {
        int n = to - from;
        ensure(size + n);
        System.arraycopy(vs, from, data, size, n);
        size += n;
    }

    private void ensure(int capacity) {
        if (capacity > data.length) {
            data = Arrays.copyOf(data, Math.max(capacity, data.length * 2));
        }
    }

    int get(int i) {
        return data[i];
    }

    int size() {
        return size;
    }

    int[] toArray() {
        return Arrays.copyOf(data, size);
    }
}
