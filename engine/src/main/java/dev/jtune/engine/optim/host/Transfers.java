package dev.jtune.engine.optim.host;

import dev.jtune.engine.Device;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;

/**
 * The copies of a host-offloaded optimizer between a device's tensors and host-mapped tensors of the same device, and
 * their ordering with the device's compute stream. On a GPU ({@link CudaTransfers}) they run on two copy streams of
 * their own, one per direction, so that they overlap the compute stream and each other; on cpu and meta
 * ({@link SyncTransfers}) they are plain copies, done when queued. Methods are called from the optimizer's thread,
 * except {@link #awaitToHost} and {@link #awaitToDevice}, which any thread may call.
 */
public sealed interface Transfers extends AutoCloseable permits CudaTransfers, SyncTransfers {

    static Transfers of(Device device) {
        return device.kind() == Device.Kind.CUDA ? new CudaTransfers(CudaBackend.get(device.index())) : new SyncTransfers();
    }

    /** Copies queued from now on (either direction) start after the device work queued so far. */
    void afterCompute();

    /** Queues a copy of contiguous device tensor {@code src} into host-mapped {@code dst} (same dtype and size). */
    void toHost(Tensor src, Tensor dst);

    /**
     * Queues a copy of contiguous device tensor {@code src} into host-mapped {@code dst} after the device work queued
     * so far (the work that computed {@code src}), and returns its completion. {@code src} must stay allocated until
     * the copy is done.
     */
    Copy toHostTracked(Tensor src, Tensor dst);

    /** A queued copy: waited for once, from any thread, then released. */
    interface Copy {
        /** A copy done when it was queued (cpu, meta). */
        Copy DONE = () -> {
        };

        /** Blocks until the copy is done, then releases what tracked it; call once. */
        void awaitAndRelease();

        /**
         * Device work queued on the compute stream from now on waits for this copy (nothing once it was awaited), so
         * its source may go back to the allocator now without the host waiting: whatever reuses that memory runs after
         * the copy has read it. From the thread that queues compute work.
         */
        default void computeWaits() {
        }
    }

    /** Marks the copies to the host queued so far as bucket {@code bucket}'s. */
    void markToHost(int bucket);

    /** Waits until bucket {@code bucket}'s copies to the host (as last marked) are done. */
    void awaitToHost(int bucket);

    /** Queues a copy of host-mapped {@code src} into contiguous device tensor {@code dst} (same dtype and size). */
    void toDevice(Tensor src, Tensor dst);

    /** Marks the copies to the device queued so far, for {@link #awaitToDevice}. */
    void markToDevice();

    /** Waits until the copies to the device (as last marked) are done: before their host source is written again. */
    void awaitToDevice();

    /** Device work queued from now on waits for every copy queued so far, in both directions. */
    void computeAfterCopies();

    /** Waits for every queued copy and releases the streams and events. */
    @Override
    void close();
}
