package dev.jtune.engine.optim.host;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * {@link HostGradients#accumulate}'s scalar loop a vector of the preferred species at a time (the same fp32 adds, so
 * the same bits); the tail goes to the scalar loop. Bf16 contributions are widened by {@link VectorAdamW}'s widening,
 * with its species. Calls of {@link #CHUNK} elements, for the reason {@link VectorAdamW} gives (C2 compiles a short
 * loop as a method in the first step; a long one is left to on-stack replacement, and the Vector API allocates until it
 * is compiled). Loaded only when {@code jdk.incubator.vector} is present.
 */
final class VectorGradients {
    private static final VectorSpecies<Float> F = VectorAdamW.F;
    private static final VectorSpecies<Short> S = VectorAdamW.S;
    private static final ByteOrder ORDER = VectorAdamW.ORDER;
    private static final long CHUNK = VectorAdamW.CHUNK;

    private VectorGradients() {
    }

    /** Elements [from, to): {@code acc (+)= src}; returns where the whole vectors end (the caller does the tail). */
    static long accumulate(MemorySegment src, boolean bf16, MemorySegment acc, long from, long to, boolean assign) {
        long end = from + (to - from) / F.length() * F.length();
        for (long i = from; i < end; i += CHUNK) {
            chunk(src, bf16, acc, i, Math.min(end, i + CHUNK), assign);
        }
        return end;
    }

    private static void chunk(MemorySegment src, boolean bf16, MemorySegment acc, long from, long end, boolean assign) {
        for (long i = from; i < end; i += F.length()) {
            FloatVector g = bf16 ? VectorAdamW.widen(ShortVector.fromMemorySegment(S, src, i * 2, ORDER)) : FloatVector.fromMemorySegment(F, src, i * 4, ORDER);
            if (!assign) {
                g = FloatVector.fromMemorySegment(F, acc, i * 4, ORDER).add(g);
            }
            g.intoMemorySegment(acc, i * 4, ORDER);
        }
    }
}
