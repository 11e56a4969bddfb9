package dev.jtune.engine.cpu;

import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;

/**
 * Visits every position of a shape in row-major order and gives, for each of several tensors viewing that shape
 * with their own strides and offsets, the element index it holds there. Copies, element-wise ops and scaling are
 * all this one loop with a different body.
 */
final class StridedWalk {
    private StridedWalk() {
    }

    interface Visitor {
        /** {@code index[k]} is operand k's element index (into its storage) at the current position; do not keep it. */
        void visit(long[] index);
    }

    static void forEach(Shape shape, Visitor visitor, Tensor... operands) {
        long total = shape.numel();
        if (total == 0) {
            return;
        }
        int rank = shape.rank();
        long[] dims = shape.toArray();
        long[][] strides = new long[operands.length][];
        long[] index = new long[operands.length];
        for (int k = 0; k < operands.length; k++) {
            strides[k] = operands[k].strides();
            index[k] = operands[k].offset();
        }
        long[] position = new long[rank];
        for (long e = 0; e < total; e++) {
            visitor.visit(index);
            advance(dims, strides, position, index);
        }
    }

    /** Odometer step: bump the last axis, carrying into earlier ones, and move every operand's index along. */
    private static void advance(long[] dims, long[][] strides, long[] position, long[] index) {
        for (int d = dims.length - 1; d >= 0; d--) {
            if (++position[d] < dims[d]) {
                for (int k = 0; k < index.length; k++) {
                    index[k] += strides[k][d];
                }
                return;
            }
            position[d] = 0;
            for (int k = 0; k < index.length; k++) {
                index[k] -= strides[k][d] * (dims[d] - 1);
            }
        }
    }
}
