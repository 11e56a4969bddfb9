package dev.jtune.engine.cuda;

import dev.jtune.engine.Tensor;

/**
 * How a row-wise kernel (kernels/rows.cuh) spreads {@code rows} rows of {@code rowLength} elements over the GPU:
 * rows of at most 1024 elements get one warp each (blocks of 32 x 8 threads, reductions by shuffles only); longer
 * rows get one block each, of up to 1024 threads (about 8 elements per thread). The grid strides over the rows.
 */
record RowLaunch(long grid, int blockX, int blockY) {
    static final int WARP_ROWS_PER_BLOCK = 8;

    static RowLaunch of(long rows, long rowLength, long maxBlocks) {
        if (rowLength <= 1024) {
            long groups = Math.ceilDiv(rows, WARP_ROWS_PER_BLOCK);
            return new RowLaunch(Math.max(1, Math.min(groups, maxBlocks)), 32, WARP_ROWS_PER_BLOCK);
        }
        long threads = Math.min(1024, Math.ceilDiv(Math.ceilDiv(rowLength, 8), 32) * 32);
        return new RowLaunch(Math.max(1, Math.min(rows, maxBlocks)), (int) threads, 1);
    }

    /** Row slots (one per warp or block): the grid's concurrent rows. */
    long slots() {
        return grid * blockY;
    }

    void launch(CudaFunction f, CudaStream stream, KernelArgs args) {
        f.launch(stream, grid, 1, blockX, blockY, 0, args);
    }

    /**
     * The widest vector access for rows of {@code rowLength} elements: {@code 16 / elementBytes} elements when the
     * row length is a multiple of it and every tensor starts aligned to that many of its own elements (capped at
     * 16 bytes, the widest single access), else 1.
     */
    static int vectorWidth(int elements, long rowLength, Tensor... tensors) {
        long[] addresses = new long[tensors.length];
        int[] elementBytes = new int[tensors.length];
        for (int i = 0; i < tensors.length; i++) {
            addresses[i] = tensors[i].address();
            elementBytes[i] = tensors[i].dtype().byteSize();
        }
        return vectorWidth(elements, rowLength, addresses, elementBytes);
    }

    /** {@link #vectorWidth(int, long, Tensor...)} with each operand's address and element size. */
    static int vectorWidth(int elements, long rowLength, long[] addresses, int[] elementBytes) {
        if (elements <= 1 || rowLength % elements != 0) {
            return 1;
        }
        for (int i = 0; i < addresses.length; i++) {
            long align = Math.min(KernelSource.VECTOR_BYTES, (long) elements * elementBytes[i]);
            if (addresses[i] % align != 0) {
                return 1;
            }
        }
        return elements;
    }

    /** Elements of {@code t}'s dtype in one widest (16-byte) access: rows.cuh's {@code Vec<T>::N}. */
    static int perAccess(Tensor t) {
        return KernelSource.VECTOR_BYTES / t.dtype().byteSize();
    }

    /** The kernel name suffix of a vector width: "_vec" for the vectorised instantiation. */
    static String vecSuffix(int width) {
        return width > 1 ? "_vec" : "";
    }

    /** Elements of the last axis of a contiguous tensor. */
    static long lastDim(Tensor t) {
        return t.rank() == 0 ? 1 : t.dim(t.rank() - 1);
    }
}
