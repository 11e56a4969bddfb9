package dev.jtune.engine.backend;

import dev.jtune.engine.Storage;
import dev.jtune.engine.Tensor;

import java.util.Objects;
import java.util.function.Function;

/**
 * What the engine's own packages need of a tensor and users must not touch: its storage (closing or adopting it
 * would free memory that views and other tensors still use). {@link Tensor} hands its accessor over once, when it is
 * initialised (the JDK's SharedSecrets pattern); this package is exported only to jtune's modules.
 */
public final class TensorInternals {
    private static volatile Function<Tensor, Storage> storage;

    private TensorInternals() {
    }

    /** Called once by {@link Tensor}'s static initialiser. */
    public static void install(Function<Tensor, Storage> accessor) {
        if (storage != null) {
            throw new IllegalStateException("tensor internals are already installed");
        }
        storage = Objects.requireNonNull(accessor);
    }

    /** The storage a tensor views (a tensor argument means Tensor is initialised, so the accessor is installed). */
    public static Storage storage(Tensor t) {
        return storage.apply(t);
    }
}
