package dev.jtune.engine.optim.host;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.HostVisible;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.CudaEvent;
import dev.jtune.engine.cuda.CudaStream;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static dev.jtune.cuda.CudaException.check;

/**
 * A GPU's offload copies: device to host on one stream, host to device on another (the two directions use separate
 * copy engines), ordered after the compute stream by an event, with one event per bucket that the host update waits
 * on. The host side is pinned (host-mapped tensors), so the copies are asynchronous DMA.
 */
public final class CudaTransfers implements Transfers {
    private final CudaBackend gpu;
    private final CudaStream toHost;
    private final CudaStream toDevice;
    private final CudaEvent computed = new CudaEvent(false);
    private final CudaEvent toHostDone = new CudaEvent(false);
    private final CudaEvent toDeviceDone = new CudaEvent(false);
    private final CudaEvent toDeviceMarked = new CudaEvent(false);
    private final List<CudaEvent> buckets = new ArrayList<>();

    CudaTransfers(CudaBackend gpu) {
        this.gpu = gpu;
        this.toHost = gpu.newStream();
        this.toDevice = gpu.newStream();
    }

    @Override
    public void afterCompute() {
        gpu.context().makeCurrent();
        computed.record(gpu.stream());
        toHost.waitFor(computed);
        toDevice.waitFor(computed);
    }

    @Override
    public void toHost(Tensor src, Tensor dst) {
        long bytes = bytes(src, dst);
        gpu.context().makeCurrent();
        check(CudaDriver.cuMemcpyDtoHAsync_v2(host(dst, bytes), src.address(), bytes, toHost.handle()), "cuMemcpyDtoHAsync_v2");
    }

    @Override
    public Copy toHostTracked(Tensor src, Tensor dst) {
        afterCompute();
        toHost(src, dst);
        CudaEvent done = new CudaEvent(false);
        done.record(toHost);
        return new TrackedCopy(done);
    }

    /** A copy's completion event; closed by whichever of the host's wait and {@link #computeWaits} comes last. */
    private final class TrackedCopy implements Copy {
        private final CudaEvent done;
        private boolean released;

        TrackedCopy(CudaEvent done) {
            this.done = done;
        }

        @Override
        public void awaitAndRelease() {
            gpu.context().makeCurrent(); // any thread
            try {
                done.synchronize();
            } finally {
                synchronized (this) {
                    released = true;
                    done.close();
                }
            }
        }

        @Override
        public synchronized void computeWaits() {
            if (!released) { // else the copy is done: nothing to order
                gpu.context().makeCurrent();
                gpu.stream().waitFor(done);
            }
        }
    }

    @Override
    public void markToHost(int bucket) {
        gpu.context().makeCurrent();
        while (buckets.size() <= bucket) {
            buckets.add(new CudaEvent(false));
        }
        buckets.get(bucket).record(toHost);
    }

    @Override
    public void awaitToHost(int bucket) {
        gpu.context().makeCurrent(); // any thread: the delayed update waits from its own
        buckets.get(bucket).synchronize();
    }

    @Override
    public void toDevice(Tensor src, Tensor dst) {
        long bytes = bytes(src, dst);
        gpu.context().makeCurrent();
        check(CudaDriver.cuMemcpyHtoDAsync_v2(dst.address(), host(src, bytes), bytes, toDevice.handle()), "cuMemcpyHtoDAsync_v2");
    }

    @Override
    public void markToDevice() {
        gpu.context().makeCurrent();
        toDeviceMarked.record(toDevice);
    }

    @Override
    public void awaitToDevice() {
        gpu.context().makeCurrent();
        toDeviceMarked.synchronize();
    }

    @Override
    public void computeAfterCopies() {
        gpu.context().makeCurrent();
        toHostDone.record(toHost);
        toDeviceDone.record(toDevice);
        gpu.stream().waitFor(toHostDone);
        gpu.stream().waitFor(toDeviceDone);
    }

    @Override
    public void close() {
        gpu.context().makeCurrent();
        toHost.synchronize();
        toDevice.synchronize();
        for (CudaEvent e : buckets) {
            e.close();
        }
        computed.close();
        toHostDone.close();
        toDeviceDone.close();
        toDeviceMarked.close();
        toHost.close();
        toDevice.close();
    }

    private static long bytes(Tensor a, Tensor b) {
        if (a.dtype() != b.dtype() || a.numel() != b.numel() || !a.isContiguous() || !b.isContiguous()) {
            throw new IllegalArgumentException("offload copy: " + a.describe() + " and " + b.describe()
                    + " must be contiguous with one dtype and size");
        }
        return a.dtype().bytesFor(a.numel());
    }

    /** The host bytes of a host-mapped tensor: its storage's host segment, from the tensor's first byte. */
    private static MemorySegment host(Tensor t, long bytes) {
        if (t.placement() != Placement.HOST_MAPPED || !(TensorInternals.storage(t) instanceof HostVisible hv)) {
            throw new IllegalArgumentException("offload copy: " + t.describe() + " is not host-mapped");
        }
        return hv.hostSegment().asSlice(t.dtype().bytesFor(t.offset()), bytes);
    }
}
