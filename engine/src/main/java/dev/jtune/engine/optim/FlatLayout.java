package dev.jtune.engine.optim;

import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * Where each named parameter sits in a flat buffer (gradients, moments, master weights): in the given order, each
 * starting at a multiple of {@link #ALIGNMENT} elements, the gaps zero. Every flat buffer of one group shares one
 * layout, so element i of the gradient buffer, of both moments and of the master copy belong to the same weight, and
 * one launch per buffer replaces one per tensor. The alignment is bitsandbytes' 8-bit block, so a block of 8-bit
 * state never straddles two parameters (each is quantized blockwise from its own first element, as bitsandbytes
 * does per tensor), and it makes every entry 16-byte aligned for any dtype.
 *
 * @param entries the parameters in buffer order
 * @param numel   the buffer's elements, the last entry's end rounded up to the alignment
 */
public record FlatLayout(List<Entry> entries, long numel) {
    /** Elements: bitsandbytes' blockwise-optimizer block (256). */
    public static final int ALIGNMENT = 256;

    /** One parameter: its name (HF's), shape and first element in the buffer. */
    public record Entry(String name, Shape shape, long offset) {
        public long numel() {
            return shape.numel();
        }

        /** One past the last element. */
        public long end() {
            return offset + numel();
        }
    }

    public FlatLayout {
        entries = List.copyOf(entries);
        long at = 0;
        for (Entry e : entries) {
            if (e.offset() < at || e.offset() % ALIGNMENT != 0) {
                throw new IllegalArgumentException("FlatLayout: " + e.name() + " at " + e.offset() + " overlaps the previous entry or is not a multiple of " + ALIGNMENT);
            }
            at = e.end();
        }
        if (numel < at || numel % ALIGNMENT != 0) {
            throw new IllegalArgumentException("FlatLayout: " + numel + " elements cannot hold entries ending at " + at);
        }
    }

    /** The parameters in map order, each aligned. */
    public static FlatLayout of(SequencedMap<String, Shape> shapes) {
        List<Entry> entries = new ArrayList<>(shapes.size());
        long at = 0;
        for (Map.Entry<String, Shape> e : shapes.entrySet()) {
            entries.add(new Entry(e.getKey(), e.getValue(), at));
            at = roundUp(at + e.getValue().numel());
        }
        return new FlatLayout(entries, at);
    }

    /**
     * The layout of {@code params} (name to parameter, in map order), which must be of one device and dtype: a flat
     * buffer holds one. {@code who} names the caller in the error.
     */
    public static FlatLayout ofParameters(String who, SequencedMap<String, Tensor> params) {
        if (params.isEmpty()) {
            throw new IllegalArgumentException(who + ": no parameters");
        }
        Tensor first = params.firstEntry().getValue();
        SequencedMap<String, Shape> shapes = new java.util.LinkedHashMap<>();
        for (var e : params.entrySet()) {
            Tensor p = e.getValue();
            if (p.dtype() != first.dtype() || !p.device().equals(first.device())) {
                throw new IllegalArgumentException(who + ": " + e.getKey() + " is " + p.describe() + ", the buffer holds "
                        + first.dtype() + " on " + first.device() + " (group parameters by device and dtype)");
            }
            shapes.put(e.getKey(), p.shape());
        }
        return of(shapes);
    }

    /** {@code n} rounded up to a multiple of {@link #ALIGNMENT}. */
    public static long roundUp(long n) {
        return (n + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    /** Entry i's elements of {@code flat} (a 1-D tensor of {@link #numel} elements), in the entry's shape: a view. */
    public Tensor view(Tensor flat, int i) {
        if (flat.shape().rank() != 1 || flat.shape().dim(0) != numel) {
            throw new IllegalArgumentException("FlatLayout.view: " + flat.describe() + " is not a flat buffer of " + numel + " elements");
        }
        Entry e = entries.get(i);
        return flat.slice(0, e.offset(), e.end()).reshape(e.shape().toArray());
    }

    /** The index of the entry named {@code name}. */
    public int indexOf(String name) {
        for (int i = 0; i < entries.size(); i++) {
            if (entries.get(i).name().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException("FlatLayout: no entry named " + name);
    }

    /** Elements that belong to some entry (the buffer less its alignment gaps). */
    public long parameterElements() {
        long n = 0;
        for (Entry e : entries) {
            n += e.numel();
        }
        return n;
    }
}
