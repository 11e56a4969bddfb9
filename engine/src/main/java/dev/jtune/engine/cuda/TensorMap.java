package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.cuda.CudaException;
import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * A TMA descriptor ({@code CUtensorMap}, sm_90) of a row-major bf16 or f16 matrix (or a stack of them): a kernel's
 * {@code cp.async.bulk.tensor} copies one box of {@code boxRows x boxCols} elements into shared memory in one
 * instruction, rows past the matrix's end read as zeros, and with {@link Swizzle#B128} the 16-byte chunks of each
 * 128-byte row are placed as wgmma's 128-byte swizzled layout wants them (kernels/wgmma.cuh). Passed to a kernel by
 * value ({@link KernelArgs#tensorMap}, {@link KernelParam#TENSOR_MAP}); encoding it is a host call, no launch.
 *
 * @param bytes the descriptor's 128 bytes (64-byte aligned)
 */
record TensorMap(MemorySegment bytes) {
    /** sizeof(CUtensorMap). */
    static final int BYTES = 128;
    /** The alignment the driver and the kernel parameter need. */
    static final int ALIGNMENT = 64;
    /** The largest box side the driver takes. */
    static final int MAX_BOX = 256;

    /** How a box's rows land in shared memory (CUtensorMapSwizzle); the span is the most bytes a box row may have. */
    enum Swizzle {
        NONE(CudaDriver.CU_TENSOR_MAP_SWIZZLE_NONE, Integer.MAX_VALUE),
        B32(CudaDriver.CU_TENSOR_MAP_SWIZZLE_32B, 32),
        B64(CudaDriver.CU_TENSOR_MAP_SWIZZLE_64B, 64),
        B128(CudaDriver.CU_TENSOR_MAP_SWIZZLE_128B, 128);

        final int driverValue;
        final int span;

        Swizzle(int driverValue, int span) {
            this.driverValue = driverValue;
            this.span = span;
        }
    }

    /**
     * The driver's rules for a tiled 2-D map, checked before the call so a refusal names what is wrong: the address
     * and the row stride 16-byte aligned (the stride under 2^40), boxes of 1 to 256 elements a side whose rows are a
     * multiple of 16 bytes and fit the swizzle's span.
     */
    static void check(long rows, long cols, long rowStrideElements, int elementBytes, long address, int boxRows, int boxCols, Swizzle swizzle) {
        String what = "tensor map of a [" + rows + ", " + cols + "] matrix (row stride " + rowStrideElements + ") in boxes of "
                + boxRows + " x " + boxCols + ", swizzle " + swizzle;
        long strideBytes = rowStrideElements * elementBytes;
        long boxRowBytes = (long) boxCols * elementBytes;
        if (rows < 1 || cols < 1 || rows > (1L << 32) || cols > (1L << 32)) {
            throw new ShapeException(what + ": each side must be 1 to 2^32");
        }
        if (rowStrideElements < cols || strideBytes % 16 != 0 || strideBytes >= (1L << 40)) {
            throw new ShapeException(what + ": the row stride must cover a row, be a multiple of 16 bytes and under 2^40, got " + strideBytes + " bytes");
        }
        if (address % 16 != 0) {
            throw new ShapeException(what + ": the start must be 16-byte aligned, got 0x" + Long.toHexString(address));
        }
        if (boxRows < 1 || boxCols < 1 || boxRows > MAX_BOX || boxCols > MAX_BOX) {
            throw new ShapeException(what + ": a box side must be 1 to " + MAX_BOX);
        }
        if (boxRowBytes % 16 != 0 || boxRowBytes > swizzle.span) {
            throw new ShapeException(what + ": a box row is " + boxRowBytes + " bytes, which must be a multiple of 16"
                    + (swizzle == Swizzle.NONE ? "" : " and at most the swizzle's " + swizzle.span));
        }
    }

    /** Shared-memory bytes one box fills. */
    static long boxBytes(int boxRows, int boxCols, int elementBytes) {
        return (long) boxRows * boxCols * elementBytes;
    }

    /**
     * The map of a [B, H, T, D] bf16 or f16 tensor with contiguous rows and any other strides (heads-major, or a [B, T,
     * H, D] tensor viewed so): boxes of one head's boxRows x boxCols at (col, row, head, batch row); rows past a head's
     * end read as zeros.
     */
    static TensorMap ofHeads(Tensor t, int boxRows, int boxCols, Swizzle swizzle) {
        if (t.rank() != 4 || (t.dtype() != DType.BF16 && t.dtype() != DType.F16) || t.stride(3) != 1) {
            throw new ShapeException("tensor map: needs a bf16 or f16 [B, H, T, D] tensor with contiguous rows, got " + t.describe());
        }
        long[] dims = {t.dim(3), t.dim(2), t.dim(1), t.dim(0)};
        long[] strides = new long[3];  // elements, for the dimensions after the innermost; a size-1 dimension's addresses nothing
        for (int i = 0; i < 3; i++) {
            int axis = 2 - i;
            strides[i] = t.dim(axis) == 1 ? t.dim(3) : t.stride(axis);
            check(dims[i + 1], dims[0], strides[i], t.dtype().byteSize(), t.address(), boxRows, boxCols, swizzle);
        }
        return encode(t, dims, strides, boxRows, boxCols, swizzle);
    }

    /**
     * The map of {@code t}: a bf16 or f16 matrix on the GPU, contiguous or row-strided, in boxes of boxRows x boxCols
     * at (col, row).
     */
    static TensorMap of(Tensor t, int boxRows, int boxCols, Swizzle swizzle) {
        if (t.rank() != 2 || (t.dtype() != DType.BF16 && t.dtype() != DType.F16) || t.stride(-1) != 1) {
            throw new ShapeException("tensor map: needs a bf16 or f16 matrix with contiguous rows, got " + t.describe());
        }
        long rows = t.dim(0);
        long cols = t.dim(1);
        long rowStride = rows == 1 ? cols : t.stride(0);
        check(rows, cols, rowStride, t.dtype().byteSize(), t.address(), boxRows, boxCols, swizzle);
        return encode(t, new long[] {cols, rows}, new long[] {rowStride}, boxRows, boxCols, swizzle);
    }

    /**
     * cuTensorMapEncodeTiled over t's memory: {@code dims} innermost first, {@code strides} in elements for every
     * dimension after the innermost, boxes of boxRows x boxCols over the two innermost and one element across the rest.
     */
    private static TensorMap encode(Tensor t, long[] dims, long[] strides, int boxRows, int boxCols, Swizzle swizzle) {
        int elementBytes = t.dtype().byteSize();
        long[] strideBytes = new long[strides.length];
        int[] box = new int[dims.length];
        int[] unit = new int[dims.length];
        for (int i = 0; i < dims.length; i++) {
            box[i] = i == 0 ? boxCols : i == 1 ? boxRows : 1;
            unit[i] = 1;
            if (i < strides.length) {
                strideBytes[i] = strides[i] * elementBytes;
            }
        }
        MemorySegment map = Arena.ofAuto().allocate(BYTES, ALIGNMENT);
        try (Arena arena = Arena.ofConfined()) {
            int dataType = t.dtype() == DType.BF16 ? CudaDriver.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CudaDriver.CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
            int rc = CudaDriver.cuTensorMapEncodeTiled(map, dataType, dims.length, MemorySegment.ofAddress(t.address()),
                    arena.allocateFrom(JAVA_LONG, dims), arena.allocateFrom(JAVA_LONG, strideBytes), arena.allocateFrom(JAVA_INT, box),
                    arena.allocateFrom(JAVA_INT, unit), CudaDriver.CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle.driverValue,
                    CudaDriver.CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CudaDriver.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
            CudaException.check(rc, "cuTensorMapEncodeTiled(" + t.describe() + " strides " + Arrays.toString(t.strides()) + ", box "
                    + boxRows + " x " + boxCols + ", " + swizzle + ")");
        }
        return new TensorMap(map);
    }
}
