package dev.jtune.engine.fused;

import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.Nf4Kernels;
import dev.jtune.engine.quant.Nf4;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.stream.LongStream;

/**
 * NF4 dequantization's kernel ({@code quant.Nf4.dequantizeInto} is the op): cpu reference, cuda launcher
 * (kernels/nf4.cu through {@link Nf4Kernels}) and meta rule, registered once as {@link #OP}.
 */
public interface Nf4Kernel {

    /**
     * bitsandbytes' 4-bit NormalFloat, blocks of 64 (see {@code quant.Nf4}), n = out.numel(). codes U8 [ceil(n/2)]:
     * element 2k in the high nibble of byte k, 2k+1 in the low one. The scale of block b (elements [64b, 64b + 64)) is
     * absmax[b], absmax F32 [ceil(n/64)]; or, double-quantized (absmax null),
     * {@code fp32(fp32(dyn[absmaxCodes[b]] * absmax2[b / 256]) + offset)} with absmaxCodes U8 [ceil(n/64)], absmax2
     * F32 [ceil(n/64/256)] and dyn bitsandbytes' signed dynamic map ({@code Nf4.dynamicMap()}). Exactly one of absmax
     * and (absmaxCodes, absmax2) is given. {@code out[i] = fp32(CODES[code_i] * scale)} rounded once to out's dtype
     * (BF16, F16 or F32); every step is one fp32 operation (no fused multiply-add), so all backends agree bit for bit
     * (NaN payloads aside). All inputs and out are contiguous and may start anywhere in their storage.
     */
    void dequantize(Tensor codes, Tensor absmax, Tensor absmaxCodes, Tensor absmax2, float offset, Tensor out);

    FusedOp<Nf4Kernel> OP = FusedOp.of("dequantizeNf4", new Cpu(), Cuda::new, new Meta());

    static Nf4Kernel on(Tensor t) {
        return OP.on(t);
    }

    /**
     * The reference on the host, with exactly the cuda kernel's float arithmetic: the block scale in fp32, one fp32
     * product with the code value, one rounding to the output dtype.
     */
    final class Cpu implements Nf4Kernel {
        private static final int BLOCK = 64;
        private static final int BLOCK2 = 256;
        /** Elements per unit of parallel work (whole blocks). */
        private static final int GROUP = 1 << 12;
        private static final float[] CODES = Nf4.codes();

        private Cpu() {
        }

        @Override
        public void dequantize(Tensor codes, Tensor absmax, Tensor absmaxCodes, Tensor absmax2, float offset, Tensor out) {
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

    /**
     * kernels/nf4.cu; its lookup tables live in a small buffer the family allocates once per GPU at its first launch
     * (resident, not per call: see the meta rule).
     */
    final class Cuda implements Nf4Kernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        @Override
        public void dequantize(Tensor codes, Tensor absmax, Tensor absmaxCodes, Tensor absmax2, float offset, Tensor out) {
            gpu.family(Nf4Kernels.class, b -> new Nf4Kernels(b.compiler(), b.stream(), b.context(), b.allocator()))
                    .dequantizeNf4(codes, absmax, absmaxCodes, absmax2, offset, out);
        }
    }

    /**
     * No per-call workspace. The cuda family's resident lookup tables ((16 + 256) floats, allocated once per GPU) are
     * not modelled, like cuBLASLt's workspace: a plan adds them once.
     */
    final class Meta implements Nf4Kernel {
        private Meta() {
        }

        @Override
        public void dequantize(Tensor codes, Tensor absmax, Tensor absmaxCodes, Tensor absmax2, float offset, Tensor out) {
        }
    }
}
