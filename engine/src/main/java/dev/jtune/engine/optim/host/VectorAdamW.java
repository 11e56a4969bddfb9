package dev.jtune.engine.optim.host;

import dev.jtune.engine.DType;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * {@link HostAdamW#stepScalar}'s operations, in the same order, a vector of the preferred species at a time; the tail
 * (fewer elements than a vector) goes to the scalar reference. Loaded only when {@code jdk.incubator.vector} is present.
 * Bf16 gradients are widened by a shift into the high half of an int lane; weights are rounded to bf16 as
 * {@code Numerics.floatToBf16} does (nearest even, NaN kept quiet) and narrowed to 16-bit lanes.
 */
final class VectorAdamW {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = F.withLanes(int.class);
    /** bf16 lanes: half the float vector's bits. */
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /**
     * Elements per call of the vector loop: short calls, so that C2 compiles the loop as a method in the first update.
     * Why: one call over a whole bucket (millions of elements, a few dozen calls per update) left the loop to on-stack
     * replacement, and on the H100 host updates of 268M parameters swung between 83 ms and 1,006 ms from one step to the
     * next (bench OffloadStep); with 16Ki-element calls they were steady (57-80 ms) but the first two took 32 s and 21 s,
     * the thousands of calls before C2 running in the interpreter, where every vector operation allocates. Short calls
     * bound that cost (and that of a recompilation) to a few million elements. {@code -Djtune.offload.chunk=N} overrides
     * it (a measurement aid, N a multiple of the vector length).
     */
    static final long CHUNK = Long.getLong("jtune.offload.chunk", 512);


    private VectorAdamW() {
    }

    static void step(HostAdamW.Buffers b, long from, long to, HostAdamW.Scalars s) {
        long end = from + (to - from) / F.length() * F.length();
        for (long i = from; i < end; i += CHUNK) {
            chunk(b, i, Math.min(end, i + CHUNK), s);
        }
        if (end < to) {
            HostAdamW.stepScalar(b, end, to, s);
        }
    }

    /** Elements [from, to), a whole number of vectors. */
    private static void chunk(HostAdamW.Buffers b, long from, long end, HostAdamW.Scalars s) {
        int lanes = F.length();
        boolean bf16 = b.gradType() == DType.BF16;
        boolean lowW1 = s.w1() < 0.5f;
        boolean scaled = s.gradScale() != 1f;
        float w1 = s.w1();
        float oneMinusW1 = 1f - s.w1();
        float negStep = -s.stepSize();
        MemorySegment master = b.master();
        MemorySegment m = b.m();
        MemorySegment v = b.v();
        MemorySegment grad = b.grad();
        MemorySegment out = b.weights16();
        for (long i = from; i < end; i += lanes) {
            long at = i * 4;
            FloatVector g = bf16 ? widen(ShortVector.fromMemorySegment(S, grad, i * 2, ORDER))
                    : FloatVector.fromMemorySegment(F, grad, at, ORDER);
            if (scaled) {
                g = g.mul(s.gradScale());
            }
            FloatVector p = FloatVector.fromMemorySegment(F, master, at, ORDER).mul(s.decay());
            FloatVector mi = FloatVector.fromMemorySegment(F, m, at, ORDER);
            FloatVector diff = g.sub(mi);
            mi = lowW1 ? mi.add(diff.mul(w1)) : g.sub(diff.mul(oneMinusW1));
            FloatVector vi = FloatVector.fromMemorySegment(F, v, at, ORDER).mul(s.beta2()).add(g.mul(s.w2()).mul(g));
            FloatVector denom = vi.sqrt().div(s.bc2Sqrt()).add(s.eps());
            p = p.add(mi.div(denom).mul(negStep));
            mi.intoMemorySegment(m, at, ORDER);
            vi.intoMemorySegment(v, at, ORDER);
            p.intoMemorySegment(master, at, ORDER);
            if (out != null) {
                narrow(p).intoMemorySegment(out, i * 2, ORDER);
            }
        }
    }

    /** bf16 bits to float: each 16-bit lane becomes the high half of a 32-bit lane (shared with {@link VectorGradients}). */
    static FloatVector widen(ShortVector bits) {
        IntVector wide = (IntVector) bits.convertShape(VectorOperators.S2I, I, 0);
        return wide.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** Float to bf16 bits, nearest even; NaN stays a quiet NaN with its sign (as {@code Numerics.floatToBf16}; shared with {@link VectorAdamW8bit}). */
    static ShortVector narrow(FloatVector p) {
        IntVector x = p.reinterpretAsInts();
        IntVector rounded = x.add(0x7FFF).add(x.lanewise(VectorOperators.LSHR, 16).and(1)).lanewise(VectorOperators.LSHR, 16);
        VectorMask<Integer> nan = x.and(0x7FFFFFFF).compare(VectorOperators.GT, 0x7F800000);
        IntVector bits = rounded.blend(x.lanewise(VectorOperators.LSHR, 16).or(0x0040), nan);
        return (ShortVector) bits.convertShape(VectorOperators.I2S, S, 0);
    }
}
