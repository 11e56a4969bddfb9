package dev.jtune.engine.cuda;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.Nf4Kernel;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.engine.quant.Nf4Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * NF4 dequantization on the GPU (kernels/nf4.cu) against the cpu backend: bit-identical outputs (raw bytes) for
 * BF16, F16 and F32, plain and double-quantized scales, sizes that are odd or not multiples of 32, 64 or 256, and
 * views that force the kernel's unvectorised path. Allocations are poisoned (NaN bytes), so an output element the
 * kernel does not write fails the comparison. Also prints the dequantization bandwidth of two Gemma-sized weights.
 */
@Tag("gpu")
class CudaNf4Test {
    private static final Device GPU = Device.cuda(0);
    private static final Device CPU = Device.CPU;
    private static final DType[] OUTPUTS = {DType.BF16, DType.F16, DType.F32};

    private Scope scope;

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    @BeforeEach
    void open(TestInfo info) {
        scope = Scope.open(info.getDisplayName());
    }

    @AfterEach
    void close() {
        scope.close();
    }

    private static void assertSameNf4(Nf4Tensor expected, Nf4Tensor actual, String what) {
        assertArrayEquals(expected.codes().toByteArray(), actual.codes().toByteArray(), what + ": codes");
        assertEquals(expected.doubleQuant(), actual.doubleQuant(), what);
        if (expected.doubleQuant()) {
            assertArrayEquals(expected.absmaxCodes().toByteArray(), actual.absmaxCodes().toByteArray(), what + ": absmax codes");
            assertArrayEquals(expected.absmax2().toByteArray(), actual.absmax2().toByteArray(), what + ": absmax2");
            assertEquals(Float.floatToIntBits(expected.offset()), Float.floatToIntBits(actual.offset()), what + ": offset");
        } else {
            assertArrayEquals(expected.absmax().toByteArray(), actual.absmax().toByteArray(), what + ": absmax");
        }
    }

    @Test
    void dequantizationIsBitIdenticalToTheCpu() {
        long[][] shapes = {{640, 2048}, {7, 9}, {1, 1}, {1, 2}, {31}, {32}, {33}, {63}, {65}, {3, 325}, {1000, 17},
                {257 * 64 + 33}, {64 * 256 * 3 + 7}, {1152, 640}};
        DType[] weights = {DType.BF16, DType.F32, DType.F16};
        int k = 0;
        for (long[] dims : shapes) {
            for (Nf4Scales scales : Nf4Scales.values()) {
                boolean dq = scales.doubleQuant();
                DType wt = weights[k++ % weights.length];
                Shape shape = Shape.of(dims);
                Tensor w = Tensor.normal(shape, wt, CPU, 1000 + k, 0.0, 0.02);
                Nf4Tensor onCpu = Nf4.quantize(w, scales);
                Nf4Tensor onGpu = Nf4.quantize(w.to(GPU), scales); // quantized on the host from the GPU's copy
                assertEquals(GPU, onGpu.device());
                String what = shape + " " + wt + (dq ? " double-quantized" : "");
                assertSameNf4(onCpu, onGpu, what);
                for (DType out : OUTPUTS) {
                    byte[] ref = Nf4.dequantize(onCpu, out).toByteArray();
                    byte[] got = Nf4.dequantize(onGpu, out).toByteArray();
                    assertArrayEquals(ref, got, what + " -> " + out);
                }
            }
        }
    }

    /**
     * Codes that start one byte into their storage and an output one element in (neither 16-byte aligned: the
     * unvectorised kernel), and an output 8 rows into a larger buffer (aligned: the vectorised one); the elements
     * around the output keep their values.
     */
    @Test
    void viewsAtOffsetsAreBitIdenticalToo() {
        CudaBackend gpu = CudaBackend.get(0);
        for (Nf4Scales scales : Nf4Scales.values()) {
            boolean dq = scales.doubleQuant();
            long rows = 97;
            long cols = 640;
            long n = rows * cols;
            Nf4Tensor q = Nf4.quantize(Tensor.normal(Shape.of(rows, cols), DType.BF16, CPU, 5, 0.0, 0.02), scales);
            Nf4Tensor g = Nf4.quantize(Tensor.normal(Shape.of(rows, cols), DType.BF16, CPU, 5, 0.0, 0.02).to(GPU), scales);
            for (DType out : OUTPUTS) {
                byte[] ref = Nf4.dequantize(q, out).toByteArray();
                int size = out.byteSize();
                String what = (dq ? "double-quantized " : "") + "-> " + out;

                // misaligned codes and output
                Tensor codes = shifted(g.codes());
                Tensor whole = Tensor.full(Shape.of(n + 2), 3.0, out, GPU);
                Tensor view = whole.slice(0, 1, n + 1);
                gpu.kernels(Nf4Kernel.OP).dequantize(codes, g.absmax(), g.absmaxCodes(), g.absmax2(), g.offset(), view);
                byte[] all = whole.toByteArray();
                assertArrayEquals(ref, Arrays.copyOfRange(all, size, (int) (n + 1) * size), what + " (unaligned)");
                double[] edges = whole.toDoubleArray();
                assertEquals(3.0, edges[0], what);
                assertEquals(3.0, edges[(int) n + 1], what);

                // an aligned row slice of a larger buffer
                Tensor big = Tensor.full(Shape.of(rows + 16, cols), 3.0, out, GPU);
                Tensor rowsView = big.slice(0, 8, 8 + rows);
                Nf4.dequantizeInto(g, rowsView);
                byte[] bigBytes = big.toByteArray();
                assertArrayEquals(ref, Arrays.copyOfRange(bigBytes, (int) (8 * cols * size), (int) ((8 + rows) * cols * size)),
                        what + " (row slice)");
                double[] bigValues = big.toDoubleArray();
                assertEquals(3.0, bigValues[(int) (8 * cols) - 1], what);
                assertEquals(3.0, bigValues[(int) ((8 + rows) * cols)], what);
            }
        }
    }

    /** The same values, contiguous, one element into a larger storage (an unaligned start). */
    private static Tensor shifted(Tensor t) {
        Tensor big = Tensor.zeros(Shape.of(t.numel() + 1), t.dtype(), t.device());
        Tensor view = big.slice(0, 1, t.numel() + 1);
        Backends.of(view).copy(t, view);
        return view;
    }

    @Test
    void repeatedDequantizationIsDeterministic() {
        Nf4Tensor q = Nf4.quantize(Tensor.normal(Shape.of(333, 641), DType.BF16, GPU, 9, 0.0, 0.02), Nf4Scales.DOUBLE_QUANTIZED);
        byte[] first = Nf4.dequantize(q, DType.BF16).toByteArray();
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(first, Nf4.dequantize(q, DType.BF16).toByteArray());
        }
    }
}
