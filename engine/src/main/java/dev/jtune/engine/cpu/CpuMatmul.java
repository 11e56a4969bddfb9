package dev.jtune.engine.cpu;

import dev.jtune.engine.DType;
import dev.jtune.engine.HostElements;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import java.lang.foreign.MemorySegment;
import java.util.stream.IntStream;

/**
 * Batched matmul for the cpu backend. Operands are first gathered into Java arrays laid out so that every output
 * element is a dot product of two contiguous rows (op(a)'s row i, op(b)'s column j); products accumulate in
 * double for every dtype, are scaled by alpha there, and each output is rounded once to out's dtype. Rows of the output run in parallel.
 */
final class CpuMatmul {
    private CpuMatmul() {
    }

    static void run(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, double alpha, boolean accumulate) {
        int m = Math.toIntExact(out.dim(-2));
        int n = Math.toIntExact(out.dim(-1));
        int k = Math.toIntExact(transA ? a.dim(-2) : a.dim(-1));
        int batches = Math.toIntExact(out.numel() / ((long) m * n));
        boolean shared = b.rank() == 2;
        // rows of op(a), and columns of op(b) as rows: op(b) = b when stored [K, N], so its columns are transposed
        Rows left = gather(a, batches, m, k, transA);
        Rows right = gather(b, shared ? 1 : batches, n, k, !transB);
        MemorySegment dst = CpuBackend.segmentOf(out);
        DType outType = out.dtype();
        long base = out.offset();
        long ld = rowStride(out, n);
        IntStream.range(0, batches * m).parallel().forEach(row -> {
            int firstColumn = shared ? 0 : (row / m) * n;
            long at = base + (long) row * ld;
            for (int j = 0; j < n; j++) {
                double v = alpha * left.dot(row, right, firstColumn + j);
                HostElements.set(dst, outType, at + j, accumulate ? HostElements.get(dst, outType, at + j) + v : v);
            }
        });
    }

    /** Elements between a matrix's stored rows: a 2-D operand's row stride (it may be a column slice), else contiguous. */
    private static long rowStride(Tensor t, long storedCols) {
        return t.rank() == 2 ? t.stride(0) : storedCols;
    }

    /**
     * {@code mats} matrices of {@code rows x cols} read from {@code t} (contiguous, or 2-D with a row stride), which stores
     * each one as [rows, cols], or as [cols, rows] when {@code transposed}. Exact: float holds every F32/BF16/F16 value.
     */
    private static Rows gather(Tensor t, int mats, int rows, int cols, boolean transposed) {
        long count = (long) mats * rows * cols;
        if (count > Integer.MAX_VALUE - 8) {
            throw new UnsupportedOpException("matmul: an operand of " + count + " elements (" + t.describe()
                    + ") is too large for the cpu backend");
        }
        Rows r = t.dtype() == DType.F64 ? new DoubleRows(new double[(int) count], cols) : new FloatRows(new float[(int) count], cols);
        MemorySegment src = CpuBackend.segmentOf(t);
        DType dtype = t.dtype();
        long index = t.offset();
        int storedRows = transposed ? cols : rows;
        int storedCols = transposed ? rows : cols;
        long gap = rowStride(t, storedCols) - storedCols;
        for (int p = 0; p < mats; p++) {
            int matBase = p * rows * cols;
            for (int sr = 0; sr < storedRows; sr++) {
                for (int sc = 0; sc < storedCols; sc++) {
                    int dest = matBase + (transposed ? sc * cols + sr : sr * cols + sc);
                    r.put(dest, HostElements.get(src, dtype, index++));
                }
                index += gap;
            }
        }
        return r;
    }

    /** Row-major rows of equal length; dot products are taken between rows of two instances of the same kind. */
    private sealed interface Rows permits DoubleRows, FloatRows {
        void put(int index, double value);

        double dot(int row, Rows other, int otherRow);
    }

    private record DoubleRows(double[] v, int length) implements Rows {
        @Override
        public void put(int index, double value) {
            v[index] = value;
        }

        @Override
        public double dot(int row, Rows other, int otherRow) {
            double[] w = ((DoubleRows) other).v;
            int x = row * length;
            int y = otherRow * length;
            double s = 0;
            for (int i = 0; i < length; i++) {
                s += v[x + i] * w[y + i];
            }
            return s;
        }
    }

    private record FloatRows(float[] v, int length) implements Rows {
        @Override
        public void put(int index, double value) {
            v[index] = (float) value; // exact: the value was read from a float-or-narrower element
        }

        @Override
        public double dot(int row, Rows other, int otherRow) {
            float[] w = ((FloatRows) other).v;
            int x = row * length;
            int y = otherRow * length;
            double s = 0;
            for (int i = 0; i < length; i++) {
                s += (double) v[x + i] * w[y + i]; // a product of two floats is exact in double
            }
            return s;
        }
    }
}
