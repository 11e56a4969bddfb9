package dev.jtune.engine.cpu;

import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.quant.Nf4;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.stream.LongStream;

/**
 * NF4 dequantization on the host. The float arithmetic is exactly the cuda kernel's (kernels/nf4.cu): the block
 * scale in fp32 ({@code fp32(fp32(dyn[c2] * absmax2) + offset)} when double-quantized), one fp32 product with the
 * code value, one rounding to the output dtype; so the two backends agree bit for bit.
 */
final class CpuQuant {
    private static final int BLOCK = 64;
    private static final int BLOCK2 = 256;
    /** Elements per unit of parallel work (whole blocks). */
    private static final int GROUP = 1 << 12;
    private static final float[] CODES = Nf4.codes();

    private CpuQuant() {
    }

    static void dequantizeNf4(Tensor codes, Tensor absmax, Tensor absmaxCodes, Tensor absmax2, float offset, Tensor out) {
        long n = out.numel();
        if (n == 0) {
            return;
        }
        DType dtype = out.dtype();
        if (dtype != DType.BF16 && dtype != DType.F16 && dtype != DType.F32) {
            throw new UnsupportedOpException("dequantizeNf4: the cpu backend writes BF16, F16 or F32, not " + out.describe());
        }
        MemorySegment cs = CpuBackend.segmentOf(codes);
        long cBase = codes.offset(); // U8: elements are bytes
        MemorySegment os = CpuBackend.segmentOf(out);
        long oBase = out.offset();
        MemorySegment as = absmax == null ? null : CpuBackend.segmentOf(absmax);
        long aBase = absmax == null ? 0 : absmax.offset();
        MemorySegment qs = absmaxCodes == null ? null : CpuBackend.segmentOf(absmaxCodes);
        long qBase = absmaxCodes == null ? 0 : absmaxCodes.offset();
        MemorySegment s2 = absmax2 == null ? null : CpuBackend.segmentOf(absmax2);
        long s2Base = absmax2 == null ? 0 : absmax2.offset();
        // parallel over groups of whole blocks; each group decodes into an array, then one bulk copy to out
        LongStream.range(0, Math.ceilDiv(n, GROUP)).parallel().forEach(g -> {
            long first = g * GROUP;
            int count = (int) Math.min(GROUP, n - first);
            float[] values = new float[count];
            for (int s = 0; s < count; s += BLOCK) {
                long b = (first + s) / BLOCK;
                float scale;
                if (as != null) {
                    scale = as.getAtIndex(ValueLayout.JAVA_FLOAT, aBase + b);
                } else {
                    int code2 = qs.get(ValueLayout.JAVA_BYTE, qBase + b) & 0xFF;
                    scale = Nf4.doubleQuantScale(code2, s2.getAtIndex(ValueLayout.JAVA_FLOAT, s2Base + b / BLOCK2), offset);
                }
                int e = Math.min(count, s + BLOCK);
                for (int i = s; i < e; i += 2) {
                    int packed = cs.get(ValueLayout.JAVA_BYTE, cBase + ((first + i) >> 1)) & 0xFF;
                    values[i] = CODES[packed >>> 4] * scale;
                    if (i + 1 < e) {
                        values[i + 1] = CODES[packed & 0xF] * scale;
                    }
                }
            }
            if (dtype == DType.F32) {
                MemorySegment.copy(values, 0, os, ValueLayout.JAVA_FLOAT, (oBase + first) * Float.BYTES, count);
                return;
            }
            short[] halves = new short[count];
            for (int i = 0; i < count; i++) {
                halves[i] = dtype == DType.BF16 ? Numerics.floatToBf16(values[i]) : Numerics.floatToF16(values[i]);
            }
            MemorySegment.copy(halves, 0, os, ValueLayout.JAVA_SHORT, (oBase + first) * 2, count);
        });
    }
}
