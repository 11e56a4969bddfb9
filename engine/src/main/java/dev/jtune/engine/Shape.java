package dev.jtune.engine;

import java.util.Arrays;

/** An immutable list of dimension sizes. Negative axis arguments count from the end, as in numpy. */
public final class Shape {
    /** The highest rank any backend must handle (kernels index up to this many dimensions). */
    public static final int MAX_RANK = 8;

    private final long[] dims;

    private Shape(long[] dims) {
        if (dims.length > MAX_RANK) {
            throw new ShapeException("rank " + dims.length + " exceeds the maximum of " + MAX_RANK + ": " + Arrays.toString(dims));
        }
        for (long d : dims) {
            if (d < 0) {
                throw new ShapeException("negative dimension in " + Arrays.toString(dims));
            }
        }
        this.dims = dims;
    }

    public static Shape of(long... dims) {
        return new Shape(dims.clone());
    }

    public static Shape of(int... dims) {
        long[] d = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            d[i] = dims[i];
        }
        return new Shape(d);
    }

    public static Shape scalar() {
        return new Shape(new long[0]);
    }

    public int rank() {
        return dims.length;
    }

    public long dim(int axis) {
        return dims[axis(axis)];
    }

    public long[] toArray() {
        return dims.clone();
    }

    /** Normalizes a possibly negative axis, or throws naming the axis and this shape. */
    public int axis(int axis) {
        int a = axis < 0 ? axis + dims.length : axis;
        if (a < 0 || a >= dims.length) {
            throw new ShapeException("axis " + axis + " is out of range for shape " + this);
        }
        return a;
    }

    public long numel() {
        long n = 1;
        for (long d : dims) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** Row-major strides, in elements. */
    public long[] contiguousStrides() {
        long[] s = new long[dims.length];
        long acc = 1;
        for (int i = dims.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= Math.max(dims[i], 1);
        }
        return s;
    }

    /** This shape with one axis removed, or set to 1 ({@link ReducedAxis#KEEP}). */
    public Shape reduce(int axis, ReducedAxis reduced) {
        int a = axis(axis);
        if (reduced == ReducedAxis.KEEP) {
            long[] d = dims.clone();
            d[a] = 1;
            return new Shape(d);
        }
        long[] d = new long[dims.length - 1];
        for (int i = 0, j = 0; i < dims.length; i++) {
            if (i != a) {
                d[j++] = dims[i];
            }
        }
        return new Shape(d);
    }

    /** Numpy broadcasting of two shapes; {@code op} names the operation in the error. */
    public static Shape broadcast(String op, Shape a, Shape b) {
        int r = Math.max(a.rank(), b.rank());
        long[] out = new long[r];
        for (int i = 0; i < r; i++) {
            long da = i < r - a.rank() ? 1 : a.dims[i - (r - a.rank())];
            long db = i < r - b.rank() ? 1 : b.dims[i - (r - b.rank())];
            if (da != db && da != 1 && db != 1) {
                throw new ShapeException(op + ": shapes " + a + " and " + b + " do not broadcast (dimension " + i + ": " + da + " vs " + db + ")");
            }
            out[i] = da == 1 ? db : da;
        }
        return new Shape(out);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Shape s && Arrays.equals(dims, s.dims);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(dims);
    }

    @Override
    public String toString() {
        return Arrays.toString(dims);
    }
}
