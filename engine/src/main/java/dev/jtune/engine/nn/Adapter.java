package dev.jtune.engine.nn;

import dev.jtune.engine.Tensor;

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
}
