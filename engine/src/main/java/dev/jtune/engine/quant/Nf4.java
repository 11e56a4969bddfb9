package dev.jtune.engine.quant;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Device;
import dev.jtune.engine.DeviceMismatchException;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.Nf4Kernel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.stream.LongStream;

/**
 * NF4 (4-bit NormalFloat) quantization with bitsandbytes' semantics, as QLoRA uses it: {@code quantize_4bit(W,
 * blocksize=64, quant_type="nf4", compress_statistics=doubleQuant)} and {@code dequantize_4bit}.
 *
 * <p><b>Quantization</b> (bitsandbytes' {@code kQuantizeBlockwise} for NF4), per block of 64 consecutive elements
 * (the last block may be shorter): {@code absmax} = the largest |x| of the block in fp32 (NaNs ignored, as
 * {@code fmaxf} does; a short last block counts its padding zeros), {@code inv = 1.0f / absmax}, and each element
 * gets the code of {@code x * inv} (an fp32 product) from bitsandbytes' comparison tree, whose thresholds are the
 * fp32 midpoints between neighbouring codes and whose tests are strict ({@code x > t}): a value exactly on a
 * threshold takes the lower code, and NaN (such as 0 * inf in an all-zero block) falls to code 0. Two codes share a
 * byte, element 2k in the high nibble; for an odd count the last low nibble is the code of a padding 0. A zero in a
 * block with a nonzero absmax takes code 7 (value 0); an all-zero block has absmax 0 and, through that NaN, codes 0
 * (value -1): it dequantizes to -0 with plain scales, and with double quantization to minus its rebuilt scale, which
 * is zero only to within the 8-bit quantization error of the scales (as in bitsandbytes).
 *
 * <p><b>Double quantization</b> ({@code compress_statistics=True}): {@code offset} = the mean of the fp32 block
 * scales; the centred scales {@code absmax - offset} (fp32) are quantized with bitsandbytes'
 * {@code quantize_blockwise(..., blocksize=256)}: per block of 256, {@code absmax2} = the largest |value|, and each
 * value gets the 8-bit code of {@code value * (1.0f / absmax2)} in the signed dynamic map ({@link #dynamicMap()}),
 * chosen by bitsandbytes' {@code dQuantize} (a 7-step binary search, then the nearer of two neighbours with the fp32
 * midpoint test). The scale of block b is then {@code fp32(fp32(dynamicMap[code2[b]] * absmax2[b / 256]) + offset)}.
 *
 * <p><b>Dequantization</b>: {@code out[i] = round(fp32(CODES[code_i] * scale[i / 64]))}, rounded once to the output
 * dtype (BF16, F16 or F32). It runs on the tensors' device through {@code fused.Nf4Kernel}; the cpu and cuda
 * backends give bit-identical results.
 *
 * <p>Differences from bitsandbytes, all in the last bit of an fp32 value: bitsandbytes builds its CUDA code with
 * {@code --use_fast_math}, so its {@code 1.0f / absmax} is an approximate reciprocal (within one ulp) where this
 * class divides exactly, and its fp32 {@code absmax.mean()} sums in a GPU-dependent order where this class sums in
 * double and rounds once. An element within an ulp of a decision threshold may therefore get the neighbouring code.
 *
 * <p>Quantization runs once per weight at load time, on the host: the weight is copied to host memory in chunks of
 * 4M elements, quantized in parallel in Java, and each chunk's codes are sent to the weight's device as they are
 * done (host memory: two chunk buffers and one float per 64 elements). A weight on the meta device gets tensors of
 * the right sizes and no data.
 */
public final class Nf4 {
    /** Host chunk of a weight quantized at a time: a multiple of GROUP. */
    private static final long CHUNK = 1L << 22;
    /** Elements per parallel task of the host quantizer: whole blocks. */
    private static final int GROUP = 1 << 14;

    private static final float[] TABLE = {
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
            -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
            0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
            0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

    /**
     * The 16 NF4 code values in code order, as fp32 (bitsandbytes' {@code get_4bit_type("nf4")}): code 7 is 0, code
     * 0 is -1 and code 15 is +1. A copy: changing it changes nothing else (see {@link #codes()}).
     */
    public static final float[] CODES = TABLE.clone();

    private Nf4() {
    }

    /** A fresh copy of the 16 NF4 code values. */
    public static float[] codes() {
        return TABLE.clone();
    }

    /**
     * A fresh copy of the 256-entry signed dynamic map of the double quantization: bitsandbytes'
     * {@code create_dynamic_map(signed=True)}, {@link DynamicMap#SIGNED}.
     */
    public static float[] dynamicMap() {
        return DynamicMap.SIGNED.table();
    }

    // ------------------------------------------------------------------ quantization

    /**
     * Quantizes {@code weight} (F32, BF16 or F16, any shape and strides, on any device) to NF4 with blocks of 64;
     * with {@link Nf4Scales#DOUBLE_QUANTIZED} the block scales are quantized too (QLoRA's double quantization). The
     * result's tensors are on the weight's device, in the current scope. The weight is read, not changed, and
     * gradients are ignored.
     */
    public static Nf4Tensor quantize(Tensor weight, Nf4Scales scales) {
        weight.checkOpen("Nf4.quantize");
        boolean doubleQuant = scales.doubleQuant();
        DType dtype = weight.dtype();
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new DTypeException("Nf4.quantize: the weight must be F32, BF16 or F16, got " + weight.describe());
        }
        Shape shape = weight.shape();
        Device device = weight.device();
        long n = shape.numel();
        long blocks = Math.ceilDiv(n, Nf4Tensor.BLOCK);
        if (blocks > Integer.MAX_VALUE - 8) {
            throw new ShapeException("Nf4.quantize: " + weight.describe() + " has too many blocks of 64 for the host quantizer");
        }
        Tensor codes = Tensor.empty(Shape.of(Math.ceilDiv(n, 2)), DType.U8, device);
        Tensor[] made = {codes, null, null};
        try {
            if (device.kind() == Device.Kind.META) {
                if (doubleQuant) {
                    made[1] = Tensor.empty(Shape.of(blocks), DType.U8, device);
                    made[2] = Tensor.empty(Shape.of(Math.ceilDiv(blocks, Nf4Tensor.BLOCK2)), DType.F32, device);
                    return new Nf4Tensor(shape, dtype, codes, null, made[1], made[2], 0f);
                }
                made[1] = Tensor.empty(Shape.of(blocks), DType.F32, device);
                return new Nf4Tensor(shape, dtype, codes, made[1], null, null, 0f);
            }
            float[] absmax = new float[(int) blocks];
            if (n > 0) {
                quantizeCodes(weight, codes, absmax);
            }
            if (!doubleQuant) {
                made[1] = Tensor.fromArray(absmax, Shape.of(blocks), DType.F32, device);
                return new Nf4Tensor(shape, dtype, codes, made[1], null, null, 0f);
            }
            DoubleQuant dq = doubleQuantize(absmax);
            made[1] = Tensor.fromBytes(dq.codes(), Shape.of(blocks), DType.U8, device);
            made[2] = Tensor.fromArray(dq.absmax2(), Shape.of(dq.absmax2().length), DType.F32, device);
            return new Nf4Tensor(shape, dtype, codes, null, made[1], made[2], dq.offset());
        } catch (RuntimeException | Error e) {
            for (Tensor t : made) {
                if (t != null) {
                    t.close();
                }
            }
            throw e;
        }
    }

    /** Streams the weight through host memory chunk by chunk, writing codes to {@code codes} and scales to {@code absmax}. */
    private static void quantizeCodes(Tensor weight, Tensor codes, float[] absmax) {
        DType dtype = weight.dtype();
        long n = weight.numel();
        Tensor detached = weight.detach();
        Tensor contiguous = detached.contiguous();
        try {
            Tensor flat = contiguous.view(n);
            long chunk = Math.min(CHUNK, n);
            try (Arena arena = Arena.ofShared()) {
                MemorySegment in = arena.allocate(dtype.bytesFor(chunk), 16);
                MemorySegment out = arena.allocate(Math.ceilDiv(chunk, 2), 16);
                for (long start = 0; start < n; start += CHUNK) {
                    long len = Math.min(CHUNK, n - start);
                    flat.slice(0, start, start + len).copyToHost(in);
                    int firstBlock = (int) (start / Nf4Tensor.BLOCK);
                    LongStream.range(0, Math.ceilDiv(len, GROUP)).parallel()
                            .forEach(g -> quantizeGroup(in, dtype, len, (int) g, out, absmax, firstBlock));
                    long bytes = Math.ceilDiv(len, 2);
                    Tensor target = codes.slice(0, start / 2, start / 2 + bytes);
                    Backends.of(target).copyFromHost(out, target);
                }
            }
        } finally {
            if (contiguous != detached) {
                contiguous.close();
            }
        }
    }

    /**
     * Quantizes group {@code g} (elements [g * GROUP, ...) of a host chunk of {@code len} elements, whole blocks)
     * into {@code out}, and its block scales into {@code absmax} from {@code firstBlock + g * GROUP / 64}.
     */
    private static void quantizeGroup(MemorySegment in, DType dtype, long len, int g, MemorySegment out, float[] absmax,
                                      int firstBlock) {
        long first = (long) g * GROUP;
        int count = (int) Math.min(GROUP, len - first);
        float[] x = new float[count + 1]; // x[count] = 0: the padding element of an odd count, as bitsandbytes loads it
        switch (dtype) {
            case F32 -> MemorySegment.copy(in, ValueLayout.JAVA_FLOAT, first * 4, x, 0, count);
            case BF16, F16 -> {
                short[] raw = new short[count];
                MemorySegment.copy(in, ValueLayout.JAVA_SHORT, first * 2, raw, 0, count);
                for (int i = 0; i < count; i++) {
                    x[i] = dtype == DType.BF16 ? Numerics.bf16ToFloat(raw[i]) : Numerics.f16ToFloat(raw[i]);
                }
            }
            default -> throw new IllegalStateException(dtype.toString());
        }
        byte[] packed = new byte[(count + 1) / 2];
        int block = firstBlock + g * (GROUP / Nf4Tensor.BLOCK);
        for (int s = 0; s < count; s += Nf4Tensor.BLOCK, block++) {
            int e = Math.min(count, s + Nf4Tensor.BLOCK);
            // bitsandbytes' fmaxf reduction: a NaN never wins; a short block also sees its padding zeros
            float max = e - s < Nf4Tensor.BLOCK ? 0f : -Float.MAX_VALUE;
            for (int i = s; i < e; i++) {
                float a = Math.abs(x[i]);
                if (a > max) {
                    max = a;
                }
            }
            float inv = 1.0f / max;
            for (int i = s; i < e; i += 2) {
                packed[i >> 1] = (byte) (quantizeCode(x[i] * inv) << 4 | quantizeCode(x[i + 1] * inv));
            }
            absmax[block] = max;
        }
        MemorySegment.copy(packed, 0, out, ValueLayout.JAVA_BYTE, first / 2, packed.length);
    }

    /**
     * bitsandbytes' NF4 decision thresholds (the literals of its dQuantizeNF4 tree): THRESHOLDS[c], the fp32 midpoint
     * of code values c and c + 1, separates code c from code c + 1.
     */
    private static final float[] THRESHOLDS = {
            -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
            -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
            0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
            0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

    /**
     * The NF4 code of a normalized value as bitsandbytes' dQuantizeNF4 gives it. Its comparison tree tests
     * {@code x > threshold} at every node over ascending thresholds, so the leaf it reaches is the number of
     * thresholds strictly below x: that count is what is computed here, without branches (about 2.5 times faster
     * than the tree on Gaussian data). A value on a threshold takes the lower code; NaN, below nothing, takes code 0.
     */
    public static int quantizeCode(float x) {
        int code = 0;
        for (float t : THRESHOLDS) {
            code += x > t ? 1 : 0;
        }
        return code;
    }

    // ------------------------------------------------------------------ double quantization

    /** The double-quantized block scales: 8-bit codes, one fp32 scale per 256 codes, and the subtracted mean. */
    record DoubleQuant(byte[] codes, float[] absmax2, float offset) {
    }

    /** bitsandbytes' {@code quantize_blockwise(absmax - absmax.mean(), blocksize=256)} with the signed dynamic map. */
    static DoubleQuant doubleQuantize(float[] absmax) {
        int m = absmax.length;
        double sum = 0;
        for (float a : absmax) {
            sum += a;
        }
        float offset = m == 0 ? 0f : (float) (sum / m);
        float[] centred = new float[m];
        for (int i = 0; i < m; i++) {
            centred[i] = absmax[i] - offset;
        }
        int blocks2 = Math.ceilDiv(m, Nf4Tensor.BLOCK2);
        float[] absmax2 = new float[blocks2];
        byte[] codes = new byte[m];
        for (int b = 0; b < blocks2; b++) {
            int first = b * Nf4Tensor.BLOCK2;
            int end = Math.min(m, first + Nf4Tensor.BLOCK2);
            float max = end - first < Nf4Tensor.BLOCK2 ? 0f : -Float.MAX_VALUE;
            for (int i = first; i < end; i++) {
                float a = Math.abs(centred[i]);
                if (a > max) {
                    max = a;
                }
            }
            absmax2[b] = max;
            float inv = 1.0f / max;
            for (int i = first; i < end; i++) {
                codes[i] = (byte) quantizeDynamic(centred[i] * inv);
            }
        }
        return new DoubleQuant(codes, absmax2, offset);
    }

    /**
     * The 8-bit code of a normalized value in the signed dynamic map, as bitsandbytes' {@code dQuantize} (not
     * stochastic) chooses it: {@link DynamicMap#quantize}, the binary search with the fp32 midpoint rule. NaN takes
     * code 0.
     */
    public static int quantizeDynamic(float x) {
        return DynamicMap.SIGNED.quantize(x);
    }

    /**
     * A block's fp32 scale rebuilt from its double-quantized statistics, with the kernels' exact arithmetic:
     * {@code fp32(fp32(dynamicMap[absmaxCode & 0xFF] * absmax2) + offset)}.
     */
    public static float doubleQuantScale(int absmaxCode, float absmax2, float offset) {
        float scaled = DynamicMap.SIGNED.dequantize(absmaxCode & 0xFF, absmax2);
        return scaled + offset;
    }

    // ------------------------------------------------------------------ dequantization

    /** A new tensor of {@code q}'s shape in {@code dtype} (BF16, F16 or F32) on q's device, in the current scope. */
    public static Tensor dequantize(Nf4Tensor q, DType dtype) {
        Nf4Tensor.checkOutputDtype("Nf4.dequantize", dtype);
        checkOpen(q, "Nf4.dequantize");
        Tensor out = Tensor.empty(q.shape(), dtype, q.device());
        try {
            dequantizeInto(q, out);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /**
     * Dequantizes {@code q} into {@code out}: contiguous, with q's shape, BF16, F16 or F32, on q's device (any
     * offset into its storage). Runs as a kernel on the GPU; queued, like every op, on the device's stream.
     */
    public static void dequantizeInto(Nf4Tensor q, Tensor out) {
        checkOpen(q, "Nf4.dequantizeInto");
        out.checkOpen("Nf4.dequantizeInto");
        Nf4Tensor.checkOutputDtype("Nf4.dequantizeInto", out.dtype());
        if (!out.shape().equals(q.shape())) {
            throw new ShapeException("Nf4.dequantizeInto: out " + out.describe() + " does not have the quantized shape " + q.shape());
        }
        if (!out.isContiguous()) {
            throw new ShapeException("Nf4.dequantizeInto: out " + out.describe() + " must be contiguous");
        }
        if (!out.device().equals(q.device())) {
            throw new DeviceMismatchException("Nf4.dequantizeInto: " + q + " but out " + out.describe());
        }
        if (out.numel() == 0) {
            return;
        }
        Nf4Kernel.on(out).dequantize(q.codes(), q.absmax(), q.absmaxCodes(), q.absmax2(), q.offset(), out);
    }

    private static void checkOpen(Nf4Tensor q, String op) {
        q.codes().checkOpen(op);
        if (q.doubleQuant()) {
            q.absmaxCodes().checkOpen(op);
            q.absmax2().checkOpen(op);
        } else {
            q.absmax().checkOpen(op);
        }
    }
}
