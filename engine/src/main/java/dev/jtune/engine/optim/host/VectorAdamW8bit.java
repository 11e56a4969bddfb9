package dev.jtune.engine.optim.host;

import dev.jtune.engine.DType;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.quant.DynamicMap;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * {@link HostAdamW8bit}'s block, for a block whose 256 elements all belong to one parameter (every block but a
 * parameter's last), with the scalar block's operations in the same order a vector at a time, so the same bits: the
 * dequantization (a gather from the map), both moments, the block maxima, the parameter and its bf16 rounding; the
 * codes are then chosen per element by {@link DynamicMap#code}. One call per block is a short call, so C2 compiles it
 * as a method in the first update (the scalar block, one loop of 256 with a branch per rare case, was recompiled some
 * 70 times in the first update of 268M parameters on the H100 host, 48 s, and then ran at ~570 ms per update).
 * Loaded only when {@code jdk.incubator.vector} is present.
 */
final class VectorAdamW8bit {
    private static final VectorSpecies<Float> F = VectorAdamW.F;
    private static final VectorSpecies<Integer> I = F.withLanes(int.class);
    private static final ByteOrder ORDER = VectorAdamW.ORDER;
    /** The bits of -Float.MAX_VALUE, a negative int: the maximum's start (the kernel's) and NaN's stand-in. */
    private static final int NO_MAX = Float.floatToRawIntBits(-Float.MAX_VALUE);
    private static final int BLOCK = AdamW8bitKernel.BLOCK;
    private static final float[] SIGNED = DynamicMap.SIGNED.table();
    private static final float[] UNSIGNED = DynamicMap.UNSIGNED.table();

    private VectorAdamW8bit() {
    }

    /** Whether a block of {@link #BLOCK} is a whole number of this machine's vectors (always, for 128- to 512-bit vectors). */
    static boolean fits() {
        return BLOCK % F.length() == 0;
    }

    /** Per-thread scratch of one block: the new moments, their normalized values, and gather indices. */
    static final class Scratch {
        final float[] m = new float[BLOCK];
        final float[] v = new float[BLOCK];
        final float[] xm = new float[BLOCK];
        final float[] xv = new float[BLOCK];
        final int[] codesM = new int[BLOCK];
        final int[] codesV = new int[BLOCK];
        final byte[] bytesM = new byte[BLOCK];
        final byte[] bytesV = new byte[BLOCK];
        float maxM;
        float maxV;
    }

    /** The full block starting at flat element {@code first} (a multiple of {@link #BLOCK}). */
    static void block(HostAdamW8bit.Buffers b, long first, HostAdamW8bit.Scalars s, Scratch w) {
        long blockIndex = first / BLOCK;
        indices(b, first, w);
        w.maxM = moment(b, first, s, false, w.codesM, w.m);
        w.maxV = moment(b, first, s, true, w.codesV, w.v);
        b.absmaxM().setAtIndex(ValueLayout.JAVA_FLOAT, blockIndex, w.maxM);
        b.absmaxV().setAtIndex(ValueLayout.JAVA_FLOAT, blockIndex, w.maxV);
        parameters(b, first, s, w);
        codes(b, first, w);
    }

    // Several methods, not one: in one, C2 ran out of inlining budget and left blends, abs and conversions as calls into
    // the Vector API's Java fallbacks (slower than the scalar block).

    /** The block's codes as ints, the indices of {@link #moment}'s gathers (one bulk copy per moment, then widened). */
    private static void indices(HostAdamW8bit.Buffers b, long first, Scratch w) {
        MemorySegment.copy(b.qm(), ValueLayout.JAVA_BYTE, first, w.bytesM, 0, BLOCK);
        MemorySegment.copy(b.qv(), ValueLayout.JAVA_BYTE, first, w.bytesV, 0, BLOCK);
        for (int j = 0; j < BLOCK; j++) {
            w.codesM[j] = Byte.toUnsignedInt(w.bytesM[j]);
            w.codesV[j] = Byte.toUnsignedInt(w.bytesV[j]);
        }
    }

    /**
     * One new moment of the block ({@code second}: v, else m) into {@code out}; returns its NaN-ignoring absolute
     * maximum. Gradient elements that are not finite give 0.
     */
    private static float moment(HostAdamW8bit.Buffers b, long first, HostAdamW8bit.Scalars s, boolean second, int[] codes, float[] out) {
        boolean bf16 = b.gradType() == DType.BF16;
        float absmax = (second ? b.absmaxV() : b.absmaxM()).getAtIndex(ValueLayout.JAVA_FLOAT, first / BLOCK);
        float[] map = second ? UNSIGNED : SIGNED;
        float beta = second ? s.beta2() : s.beta1();
        float weight = second ? s.w2() : s.w1();
        IntVector max = IntVector.broadcast(I, NO_MAX);
        for (int j = 0; j < BLOCK; j += F.length()) {
            FloatVector graw = gradient(b.grad(), bf16, first + j);
            FloatVector g = graw.mul(s.gradScale());
            FloatVector term = second ? g.mul(weight).mul(g) : g.mul(weight);
            FloatVector x = FloatVector.fromArray(F, map, 0, codes, j).mul(absmax).mul(beta).add(term);
            IntVector bits = x.reinterpretAsInts().and(finiteLanes(graw)); // +0 where the gradient is not finite
            bits.reinterpretAsFloats().intoArray(out, j);
            max = max.max(magnitude(bits));
        }
        return Float.intBitsToFloat(max.reduceLanes(VectorOperators.MAX));
    }

    /** The master (elements with a finite gradient), its bf16 rounding, and the moments over the maxima into {@code w.xm}, {@code w.xv}. */
    private static void parameters(HostAdamW8bit.Buffers b, long first, HostAdamW8bit.Scalars s, Scratch w) {
        boolean bf16 = b.gradType() == DType.BF16;
        MemorySegment master = b.master();
        MemorySegment out = b.weights16();
        for (int j = 0; j < BLOCK; j += F.length()) {
            long i = first + j;
            IntVector finite = finiteLanes(gradient(b.grad(), bf16, i));
            FloatVector mj = FloatVector.fromArray(F, w.m, j);
            FloatVector vj = FloatVector.fromArray(F, w.v, j);
            FloatVector p = FloatVector.fromMemorySegment(F, master, i * 4, ORDER);
            FloatVector stepped = p.add(mj.div(vj.sqrt().add(s.epsTerm())).mul(s.stepSize()));
            if (s.decayOn()) {
                stepped = stepped.mul(s.decay());
            }
            IntVector pBits = p.reinterpretAsInts(); // stepped where finite, else p
            p = pBits.lanewise(VectorOperators.XOR, pBits.lanewise(VectorOperators.XOR, stepped.reinterpretAsInts()).and(finite)).reinterpretAsFloats();
            p.intoMemorySegment(master, i * 4, ORDER);
            if (out != null) {
                VectorAdamW.narrow(p).intoMemorySegment(out, i * 2, ORDER);
            }
            mj.div(w.maxM).intoArray(w.xm, j);
            vj.div(w.maxV).intoArray(w.xv, j);
        }
    }

    /**
     * The new codes: {@link DynamicMap#codes} (by table, on the Vector API), the first moment's sign rule
     * ({@link #keepSign}), then one bulk copy per moment (per-byte stores into a segment cost a bounds and alignment
     * check each).
     */
    private static void codes(HostAdamW8bit.Buffers b, long first, Scratch w) {
        DynamicMap.SIGNED.codes(w.xm, w.codesM, BLOCK);
        DynamicMap.UNSIGNED.codes(w.xv, w.codesV, BLOCK);
        keepSign(w.m, w.codesM);
        for (int j = 0; j < BLOCK; j++) {
            w.bytesM[j] = (byte) w.codesM[j];
            w.bytesV[j] = (byte) w.codesV[j];
        }
        MemorySegment.copy(w.bytesM, 0, b.qm(), ValueLayout.JAVA_BYTE, first, BLOCK);
        MemorySegment.copy(w.bytesV, 0, b.qv(), ValueLayout.JAVA_BYTE, first, BLOCK);
    }

    /**
     * {@code AdamW8bitKernel.keepSign} over a block in integer arithmetic: a code below the signed map's zero has its
     * sign bit set; where that differs from m's, the code moves one step toward m (up only when m > 0: not for -0 or NaN).
     */
    private static void keepSign(float[] m, int[] codes) {
        for (int j = 0; j < BLOCK; j += I.length()) {
            IntVector c = IntVector.fromArray(I, codes, j);
            IntVector mBits = FloatVector.fromArray(F, m, j).reinterpretAsInts();
            IntVector mNegative = mBits.lanewise(VectorOperators.ASHR, 31);
            IntVector differ = c.sub(AdamW8bitKernel.SIGNED_ZERO_CODE).lanewise(VectorOperators.ASHR, 31).lanewise(VectorOperators.XOR, mNegative);
            IntVector abs = mBits.and(0x7FFFFFFF);
            IntVector nonZero = abs.neg().lanewise(VectorOperators.ASHR, 31);
            IntVector nan = IntVector.broadcast(I, 0x7F800000).sub(abs).lanewise(VectorOperators.ASHR, 31);
            IntVector positive = nonZero.and(mNegative.or(nan).lanewise(VectorOperators.XOR, -1));
            IntVector step = positive.and(2).sub(1); // +1 where m > 0, else -1
            c.add(step.and(differ)).and(0xFF).intoArray(codes, j);
        }
    }

    /** Gradient elements [i, i + lanes) as floats. */
    private static FloatVector gradient(MemorySegment grad, boolean bf16, long i) {
        return bf16 ? VectorAdamW.widen(ShortVector.fromMemorySegment(VectorAdamW.S, grad, i * 2, ORDER))
                : FloatVector.fromMemorySegment(F, grad, i * 4, ORDER);
    }

    /**
     * All ones in the lanes where {@code x} is finite, else 0: {@code (|x| bits - inf bits) >> 31}. Masks, blends and
     * not() are left out of this class (selects are xor and and): here C2 left them as calls into the Java fallbacks.
     */
    private static IntVector finiteLanes(FloatVector x) {
        return x.reinterpretAsInts().and(0x7FFFFFFF).sub(0x7F800000).lanewise(VectorOperators.ASHR, 31);
    }

    /**
     * |x| as int bits, which order as the magnitudes do, NaN as {@link #NO_MAX} (below every magnitude): so the
     * int maximum is the kernel's NaN-ignoring fmaxf over |x|, from -Float.MAX_VALUE.
     */
    private static IntVector magnitude(IntVector bits) {
        IntVector a = bits.and(0x7FFFFFFF);
        IntVector nan = IntVector.broadcast(I, 0x7F800000).sub(a).lanewise(VectorOperators.ASHR, 31);
        return a.lanewise(VectorOperators.XOR, a.lanewise(VectorOperators.XOR, NO_MAX).and(nan)); // a, or NO_MAX where nan
    }
}
