package dev.jtune.engine.nn;

import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import java.util.Optional;

/**
 * A trainable addition to a frozen {@link Linear} (LoRA): {@code y = x W^T + adapter(x)}. Implemented outside the
 * engine (the LoRA package); the Linear only calls it.
 */
@FunctionalInterface
public interface Adapter {
    /** The update of the module's output for input x. */
    Tensor apply(Tensor x);

    /**
     * The module's output y (a fresh product, which this may consume) plus the update for x; adapters that can
     * accumulate into y's storage override this.
     */
    default Tensor addTo(Tensor y, Tensor x) {
        return y.add(apply(x));
    }

    /**
     * Whether {@link #addTo(Tensor, long, Tensor)} can add the update into a window of columns of a wider 2-D output
     * of {@code outputType} (a {@link LinearGroup}'s fused product); a group whose adapters cannot runs its parts apart.
     */
    default boolean addsIntoColumns(DType outputType) {
        return false;
    }

    /**
     * The fused output y [rows, N] (a fresh product, which this consumes) with the update for x added into its
     * columns [column, column + out).
     */
    default Tensor addTo(Tensor y, long column, Tensor x) {
        throw new UnsupportedOpException(getClass().getSimpleName() + " does not add into a fused product's columns");
    }

    /**
     * The update's low-rank pieces for input x, when it is {@code scale (x A^T) B^T} with x as it comes (no dropout
     * drawn on it now): A [r, in] and B [out, r] in the products' dtype (their casts, as the update's own products take
     * them). Linears of one input whose adapters all give them may then share one down product ({@link LinearGroup}).
     * Empty otherwise.
     */
    default Optional<LowRank> lowRank(Tensor x) {
        return Optional.empty();
    }

    /** {@code scale (x A^T) B^T}'s pieces: a [r, in], b [out, r], both in the products' dtype. */
    record LowRank(Tensor a, Tensor b, double scale) {
    }
}
