package dev.jtune.engine.optim.host;

import dev.jtune.engine.Ops;
import dev.jtune.engine.Tensor;

/**
 * Transfers on cpu (plain copies between host memory) and meta (nothing to copy): each copy is done when it returns, so
 * there is nothing to order or wait for.
 */
public final class SyncTransfers implements Transfers {
    SyncTransfers() {
    }

    @Override
    public void afterCompute() {
    }

    @Override
    public void toHost(Tensor src, Tensor dst) {
        Ops.copyInto(src, dst);
    }

    @Override
    public Copy toHostTracked(Tensor src, Tensor dst) {
        Ops.copyInto(src, dst);
        return Copy.DONE;
    }

    @Override
    public void markToHost(int bucket) {
    }

    @Override
    public void awaitToHost(int bucket) {
    }

    @Override
    public void toDevice(Tensor src, Tensor dst) {
        Ops.copyInto(src, dst);
    }

    @Override
    public void markToDevice() {
    }

    @Override
    public void awaitToDevice() {
    }

    @Override
    public void computeAfterCopies() {
    }

    @Override
    public void close() {
    }
}
