package dev.jtune.engine.cuda;

import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The C struct {@code Layout} of kernels/common.cuh (int rank; int64 shape[8]; int64 stride[8]), built for
 * several tensors of one shape at once after merging dimensions that are contiguous in all of them: a
 * contiguous tensor becomes rank 1, which the kernels index without any division.
 */
final class StridedLayout {
    static final long BYTES = 8 + 8L * Shape.MAX_RANK * 2;

    private StridedLayout() {
    }

    /** Merged {shape, strides of tensor 0, strides of tensor 1, ...} for tensors sharing one shape. */
    static long[][] coalesce(Tensor... tensors) {
        long[][] strides = new long[tensors.length][];
        for (int t = 0; t < tensors.length; t++) {
            strides[t] = new long[tensors[t].rank()];
            for (int d = 0; d < strides[t].length; d++) {
                strides[t][d] = tensors[t].stride(d);
            }
        }
        return coalesce(tensors[0].shape().toArray(), strides);
    }

    /**
     * {@link #coalesce(Tensor...)} over a shape and each operand's strides (in elements): adjacent dimensions merge
     * where every operand steps through them as through one, size-1 dimensions drop, a scalar becomes [1].
     */
    static long[][] coalesce(long[] shape, long[]... tensorStrides) {
        int rank = shape.length;
        int tensors = tensorStrides.length;
        long[] dims = new long[Math.max(rank, 1)]; // a scalar (rank 0) becomes one element of rank 1
        long[][] strides = new long[tensors][Math.max(rank, 1)];
        int r = 0;
        for (int d = 0; d < rank; d++) {
            long size = shape[d];
            if (size == 1) {
                continue; // size-1 axes do not move the index
            }
            boolean mergeable = r > 0;
            for (int t = 0; t < tensors && mergeable; t++) {
                mergeable = strides[t][r - 1] == tensorStrides[t][d] * size;
            }
            if (mergeable) {
                dims[r - 1] *= size;
                for (int t = 0; t < tensors; t++) {
                    strides[t][r - 1] = tensorStrides[t][d];
                }
            } else {
                dims[r] = size;
                for (int t = 0; t < tensors; t++) {
                    strides[t][r] = tensorStrides[t][d];
                }
                r++;
            }
        }
        if (r == 0) { // a single element
            dims[0] = 1;
            r = 1;
        }
        long[][] out = new long[tensors + 1][];
        out[0] = Arrays.copyOf(dims, r);
        for (int t = 0; t < tensors; t++) {
            out[t + 1] = Arrays.copyOf(strides[t], r);
        }
        return out;
    }

    /**
     * The coalesced layouts {@code l} re-expressed in units of {@code chunk} elements, when every tensor's innermost
     * dimension is contiguous (stride 1) and a multiple of {@code chunk} long, every other stride is a multiple of
     * {@code chunk}, and every address is 16-byte aligned; otherwise null (the per-element kernels then run).
     */
    static long[][] chunked(long[][] l, int chunk, Tensor... tensors) {
        long[] addresses = new long[tensors.length];
        for (int t = 0; t < tensors.length; t++) {
            addresses[t] = tensors[t].address();
        }
        return chunked(l, chunk, addresses);
    }

    /** {@link #chunked(long[][], int, Tensor...)} with each operand's address. */
    static long[][] chunked(long[][] l, int chunk, long... addresses) {
        int r = l[0].length;
        if (l[0][r - 1] % chunk != 0) {
            return null;
        }
        long[][] out = new long[l.length][];
        out[0] = l[0].clone();
        out[0][r - 1] /= chunk;
        for (int t = 0; t < addresses.length; t++) {
            long[] st = l[t + 1];
            if (st[r - 1] != 1 || addresses[t] % KernelSource.VECTOR_BYTES != 0) {
                return null;
            }
            out[t + 1] = new long[r];
            for (int d = 0; d < r - 1; d++) {
                if (st[d] % chunk != 0) {
                    return null;
                }
                out[t + 1][d] = st[d] / chunk;
            }
            out[t + 1][r - 1] = 1;
        }
        return out;
    }

    /** The number of elements of a layout's shape. */
    static long count(long[] dims) {
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        return n;
    }

    /** Writes the struct for {@code dims} and {@code strides} into {@code seg}. */
    static void write(MemorySegment seg, long[] dims, long[] strides) {
        seg.fill((byte) 0);
        seg.set(ValueLayout.JAVA_INT, 0, dims.length);
        for (int i = 0; i < dims.length; i++) {
            seg.set(ValueLayout.JAVA_LONG, 8 + 8L * i, dims[i]);
            seg.set(ValueLayout.JAVA_LONG, 8 + 8L * (Shape.MAX_RANK + i), strides[i]);
        }
    }
}
