package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

/**
 * The dtypes the fused kernels take for statistics and accumulators that their contracts (fused.*Kernel) document as F32
 * (rstd, lse, loss rows, scores, gradient sums): F32, and F64 alongside F64 inputs (float64 gradient checks).
 */
final class StatTypes {
    private StatTypes() {
    }

    /** The statistic dtype that goes with an input of {@code input}'s dtype. */
    static DType of(DType input) {
        return input == DType.F64 ? DType.F64 : DType.F32;
    }

    /** Throws UnsupportedOpException unless {@code t} has dtype {@code expected}. */
    static void require(String op, String what, Tensor t, DType expected) {
        if (t.dtype() != expected) {
            throw new UnsupportedOpException(op + ": the cuda kernels take " + what + " as " + expected + " here, got "
                    + t.dtype());
        }
    }

    /** Kernel flag of a one-element F32 (0) or F64 (1) tensor. */
    static int scalarFlag(String op, String what, Tensor t) {
        return switch (t.dtype()) {
            case F32 -> 0;
            case F64 -> 1;
            default -> throw new UnsupportedOpException(op + ": " + what + " must be F32 or F64, got " + t.dtype());
        };
    }
}
