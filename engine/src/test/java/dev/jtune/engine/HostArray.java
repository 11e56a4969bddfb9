package dev.jtune.engine;

import java.util.Arrays;
import java.util.Random;
import java.util.function.Consumer;
import java.util.function.ToDoubleFunction;

/**
 * A row-major n-dimensional array of doubles on the host: the plain reference the engine's results are checked
 * against. Indexing is written out here independently of the engine's strides and views.
 */
record HostArray(long[] shape, double[] data) {

    static HostArray of(Tensor t) {
        return new HostArray(t.shape().toArray(), t.toDoubleArray());
    }

    /** Element at every index of {@code shape} given by {@code f}. */
    static HostArray generate(long[] shape, ToDoubleFunction<long[]> f) {
        double[] data = new double[Math.toIntExact(numel(shape))];
        int[] next = {0};
        forEachIndex(shape, idx -> data[next[0]++] = f.applyAsDouble(idx));
        return new HostArray(shape.clone(), data);
    }

    /** Uniform values in [lo, hi). */
    static HostArray random(Random rnd, long[] shape, double lo, double hi) {
        return generate(shape, idx -> lo + (hi - lo) * rnd.nextDouble());
    }

    /** A contiguous cpu tensor of these values, each rounded to {@code dtype}. */
    Tensor toTensor(DType dtype) {
        return Tensor.fromArray(data, Shape.of(shape), dtype, Device.CPU);
    }

    double at(long... idx) {
        long flat = 0;
        for (int d = 0; d < shape.length; d++) {
            if (idx[d] < 0 || idx[d] >= shape[d]) {
                throw new IndexOutOfBoundsException(Arrays.toString(idx) + " in " + Arrays.toString(shape));
            }
            flat = flat * shape[d] + idx[d];
        }
        return data[Math.toIntExact(flat)];
    }

    /** The element numpy broadcasting gives at {@code outIdx} of a larger output shape. */
    double broadcastAt(long[] outIdx) {
        long[] idx = new long[shape.length];
        int lead = outIdx.length - shape.length;
        for (int d = 0; d < shape.length; d++) {
            idx[d] = shape[d] == 1 ? 0 : outIdx[lead + d];
        }
        return at(idx);
    }

    int rank() {
        return shape.length;
    }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** Row-major odometer over every index of {@code shape} (the visitor must not keep the array). */
    static void forEachIndex(long[] shape, Consumer<long[]> visitor) {
        if (numel(shape) == 0) {
            return;
        }
        long[] idx = new long[shape.length];
        while (true) {
            visitor.accept(idx);
            int d = shape.length - 1;
            while (d >= 0 && ++idx[d] == shape[d]) {
                idx[d--] = 0;
            }
            if (d < 0) {
                return;
            }
        }
    }
}
