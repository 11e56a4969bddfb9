package dev.jtune.engine;

/**
 * Where a recomputation checkpoint keeps its inputs between forward and backward ({@link Autograd#checkpoint(
 * java.util.function.Function, ActivationStore, Tensor...)}): {@link #DEVICE} leaves them where they are; an offloading
 * store (dev.jtune.engine.offload.HostActivationStore) copies them to host memory after forward, frees their device
 * memory, and copies them back before the recomputation needs them (torch's saved-tensor hooks, pack and unpack).
 */
@FunctionalInterface
public interface ActivationStore {
    /** Keeps the tensor itself. */
    ActivationStore DEVICE = t -> () -> t;

    /**
     * Takes a checkpoint's input once its forward is done. The store may free the tensor's device memory (once it is
     * copied): pass only tensors nothing else reads before backward.
     */
    Stashed stash(Tensor input);

    /** A stashed input. */
    @FunctionalInterface
    interface Stashed {
        /**
         * The input again, on its device, with its shape and dtype, readable by work queued from now on; called once,
         * in backward. A tensor the store allocates lives in the scope current at the call.
         */
        Tensor restore();
    }
}
