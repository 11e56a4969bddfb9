package dev.jtune.engine.optim.host;

import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.optim.FlatLayout;
import dev.jtune.engine.quant.DynamicMap;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * bitsandbytes' blockwise 8-bit AdamW ({@link AdamW8bitKernel} states the algorithm) over flat host buffers, on every
 * core, for the host-offloaded optimizer: an fp32 master, uint8 codes and fp32 block maxima for both moments, a bf16
 * or fp32 gradient, and optionally the updated weights rounded to bf16 into an output buffer. The arithmetic is
 * kernels/adamw8bit.cu's, in fp32 in the same order, with its scalars (each computed in double and cast to float
 * once); the cuda compiler may fuse a multiply and an add the Java code rounds twice, so a code can differ from the
 * GPU's where a moment lies within an ulp of a midpoint. Blocks are independent, so how a range is split over
 * threads does not change a bit.
 */
public final class HostAdamW8bit {
    /** Elements per quantization block (bitsandbytes' 256): ranges handed to {@link #step} start on a multiple. */
    public static final int BLOCK = AdamW8bitKernel.BLOCK;

    /** Whether the vector block runs: the Vector API present and a block a whole number of vectors. */
    private static final boolean VECTOR = HostAdamW.vectorized() && Boolean.parseBoolean(System.getProperty("jtune.offload.vector8bit", "true"))
            && VectorAdamW8bit.fits();

    private HostAdamW8bit() {
    }

    /** The fp32 scalars of one step, as adamw8bit.cu receives them from {@code Adam8bitKernels}. */
    public record Scalars(float beta1, float w1, float beta2, float w2, float stepSize, float epsTerm, float decay, boolean decayOn,
                          float gradScale) {
        public static Scalars of(AdamWStep step, double gradScale) {
            double bc2Sqrt = Math.sqrt(step.biasCorrection2());
            return new Scalars((float) step.beta1(), (float) (1 - step.beta1()), (float) step.beta2(), (float) (1 - step.beta2()),
                    (float) (-step.lr() * bc2Sqrt / step.biasCorrection1()), (float) (bc2Sqrt * step.eps()),
                    (float) (1 - step.lr() * step.weightDecay()), step.weightDecay() > 0, (float) gradScale);
        }
    }

    /**
     * Flat host buffers of one group (element i of each belongs to the same weight; block b of the maxima to elements
     * [256 b, 256 b + 256)): {@code master} fp32, {@code qm}, {@code qv} uint8 codes and {@code absmaxM}, {@code absmaxV}
     * fp32 (all updated in place), {@code grad} of {@code gradType} (BF16 or F32, read), {@code weights16} (bf16,
     * written) or null. {@code offsets} and {@code ends}: each parameter's [offset, end) in the flat buffers, ascending;
     * a block's elements past its parameter's end are bitsandbytes' padding (read as gradient 0 and the padding codes,
     * never written); a block that starts in a gap does nothing.
     */
    public record Buffers(MemorySegment master, MemorySegment qm, MemorySegment qv, MemorySegment absmaxM, MemorySegment absmaxV,
                          MemorySegment grad, DType gradType, MemorySegment weights16, long[] offsets, long[] ends) {
        public Buffers {
            if (gradType != DType.BF16 && gradType != DType.F32) {
                throw new IllegalArgumentException("HostAdamW8bit: gradients must be BF16 or F32, got " + gradType);
            }
            if (offsets.length != ends.length) {
                throw new IllegalArgumentException("HostAdamW8bit: " + offsets.length + " offsets, " + ends.length + " ends");
            }
            offsets = offsets.clone();
            ends = ends.clone();
        }

        /** The buffers of a flat group laid out by {@code layout} (each parameter's [offset, end) from its entries). */
        public static Buffers over(FlatLayout layout, MemorySegment master, MemorySegment qm, MemorySegment qv, MemorySegment absmaxM,
                                   MemorySegment absmaxV, MemorySegment grad, DType gradType, MemorySegment weights16) {
            int n = layout.entries().size();
            long[] offsets = new long[n];
            long[] ends = new long[n];
            for (int i = 0; i < n; i++) {
                offsets[i] = layout.entries().get(i).offset();
                ends[i] = layout.entries().get(i).end();
            }
            return new Buffers(master, qm, qv, absmaxM, absmaxV, grad, gradType, weights16, offsets, ends);
        }

        /** Elements every buffer holds (whole blocks). */
        long capacity() {
            long n = Math.min(master.byteSize() / 4, Math.min(qm.byteSize(), qv.byteSize()));
            n = Math.min(n, Math.min(absmaxM.byteSize(), absmaxV.byteSize()) / 4 * BLOCK);
            n = Math.min(n, grad.byteSize() / gradType.bytesFor(1));
            return weights16 == null ? n : Math.min(n, weights16.byteSize() / 2);
        }
    }

    /** One step over elements [from, to) of {@code b} (whole blocks), split over every core; returns when it is done. */
    public static void step(Buffers b, long from, long to, Scalars s) {
        checkRange(b, from, to);
        HostAdamW.forRanges(from, to, BLOCK, (lo, hi) -> stepOnThread(b, lo, hi, s));
    }

    /**
     * {@link #step} on the calling thread: a block inside one parameter on the Vector API where present
     * ({@link VectorAdamW8bit}, the same bits), the rest (a parameter's last block, with its padding) here.
     */
    public static void stepOnThread(Buffers b, long from, long to, Scalars s) {
        checkRange(b, from, to);
        VectorAdamW8bit.Scratch scratch = VECTOR ? new VectorAdamW8bit.Scratch() : null;
        float[] m = new float[BLOCK];
        float[] v = new float[BLOCK];
        boolean[] finite = new boolean[BLOCK];
        for (long first = from; first < to; first += BLOCK) {
            int e = VECTOR ? AdamW8bitKernel.entryOf(b.offsets(), b.ends(), first) : -1;
            if (e >= 0 && first + BLOCK <= b.ends()[e]) {
                VectorAdamW8bit.block(b, first, s, scratch);
            } else {
                block(b, first, s, m, v, finite);
            }
        }
    }

    /** {@link #stepOnThread} without the Vector API: the reference the vector path is held to, bit for bit. */
    static void stepScalar(Buffers b, long from, long to, Scalars s) {
        checkRange(b, from, to);
        float[] m = new float[BLOCK];
        float[] v = new float[BLOCK];
        boolean[] finite = new boolean[BLOCK];
        for (long first = from; first < to; first += BLOCK) {
            block(b, first, s, m, v, finite);
        }
    }

    /** The block starting at flat element {@code first}: adamw8bit.cu's thread block, one element per loop turn. */
    private static void block(Buffers b, long first, Scalars s, float[] m, float[] v, boolean[] finite) {
        int e = AdamW8bitKernel.entryOf(b.offsets(), b.ends(), first);
        if (e < 0) {
            return;
        }
        long end = b.ends()[e];
        long blockIndex = first / BLOCK;
        float absM = b.absmaxM().getAtIndex(ValueLayout.JAVA_FLOAT, blockIndex);
        float absV = b.absmaxV().getAtIndex(ValueLayout.JAVA_FLOAT, blockIndex);
        boolean bf16 = b.gradType() == DType.BF16;
        float maxM = -Float.MAX_VALUE;
        float maxV = -Float.MAX_VALUE;
        for (int j = 0; j < BLOCK; j++) {
            long i = first + j;
            boolean valid = i < end;
            float graw = !valid ? 0f : bf16 ? Numerics.bf16ToFloat(b.grad().getAtIndex(ValueLayout.JAVA_SHORT, i))
                    : b.grad().getAtIndex(ValueLayout.JAVA_FLOAT, i);
            finite[j] = Float.isFinite(graw);
            float mj = 0f;
            float vj = 0f;
            if (finite[j]) {
                float g = graw * s.gradScale();
                int cm = valid ? Byte.toUnsignedInt(b.qm().get(ValueLayout.JAVA_BYTE, i)) : AdamW8bitKernel.PAD_CODE_M;
                int cv = valid ? Byte.toUnsignedInt(b.qv().get(ValueLayout.JAVA_BYTE, i)) : AdamW8bitKernel.PAD_CODE_V;
                vj = DynamicMap.UNSIGNED.value(cv) * absV;
                vj = vj * s.beta2() + s.w2() * g * g;
                mj = DynamicMap.SIGNED.value(cm) * absM;
                mj = mj * s.beta1() + s.w1() * g;
            }
            m[j] = mj;
            v[j] = vj;
            maxM = fmax(maxM, Math.abs(mj));
            maxV = fmax(maxV, Math.abs(vj));
        }
        b.absmaxM().setAtIndex(ValueLayout.JAVA_FLOAT, blockIndex, maxM);
        b.absmaxV().setAtIndex(ValueLayout.JAVA_FLOAT, blockIndex, maxV);
        for (int j = 0; j < BLOCK && first + j < end; j++) {
            long i = first + j;
            float p = b.master().getAtIndex(ValueLayout.JAVA_FLOAT, i);
            if (finite[j]) {
                p = p + s.stepSize() * (m[j] / ((float) Math.sqrt(v[j]) + s.epsTerm()));
                if (s.decayOn()) {
                    p = p * s.decay();
                }
                b.master().setAtIndex(ValueLayout.JAVA_FLOAT, i, p);
            }
            if (b.weights16() != null) { // every weight, stepped or not: the buffer is what the device's copy reads
                b.weights16().setAtIndex(ValueLayout.JAVA_SHORT, i, Numerics.floatToBf16(p));
            }
            b.qm().set(ValueLayout.JAVA_BYTE, i, (byte) AdamW8bitKernel.keepSign(m[j], DynamicMap.SIGNED.code(m[j] / maxM)));
            b.qv().set(ValueLayout.JAVA_BYTE, i, (byte) DynamicMap.UNSIGNED.code(v[j] / maxV));
        }
    }

    /** NaN-ignoring maximum (C's fmaxf, as the kernel's reduction). */
    private static float fmax(float a, float b) {
        return Float.isNaN(a) ? b : Float.isNaN(b) ? a : Math.max(a, b);
    }

    private static void checkRange(Buffers b, long from, long to) {
        if (from < 0 || to < from || to > b.capacity() || from % BLOCK != 0 || (to % BLOCK != 0 && to != b.capacity())) {
            throw new IndexOutOfBoundsException("HostAdamW8bit: elements [" + from + ", " + to + ") of buffers holding "
                    + b.capacity() + " (ranges are whole blocks of " + BLOCK + ")");
        }
    }
}
