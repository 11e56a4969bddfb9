package dev.jtune.engine.offload;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.optim.host.Transfers;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * Checkpointed activations in pinned host memory (HF's {@code gradient_checkpointing_kwargs={"offload": true}},
 * torch's {@code save_on_cpu}): a stashed checkpoint input is copied to a host-mapped buffer on the device-to-host
 * copy stream and its device memory freed once the copy is done (checked at the next stash, a layer's forward later);
 * in backward each restore waits for its input's copy back, then queues the copy of the input stashed just before it
 * (the next one backward needs), so one copy back overlaps each recomputation (double buffering). Host buffers are
 * pooled by size and reused from one micro-batch to the next, since pinning memory is slow; they count as host
 * ACTIVATIONS. Real micro-batches differ in length, so a stash takes the smallest free buffer of its dtype that holds it
 * (a prefix of it), and where none does, the smallest free one is released before a new one is pinned: the pool never
 * holds more buffers than one pass stashes, none longer than the longest input seen, which is what the planner counts
 * (at the data's longest sequence). A pass whose backward never runs keeps its buffers until the store closes. Copies go through
 * {@link Transfers}: copy streams on a GPU, plain copies on cpu and meta. Used from the training thread only. The store lives as long as the run: allocations are made in the scope current at its
 * construction; {@link #close()} releases the copy streams.
 */
public final class HostActivationStore implements ActivationStore, AutoCloseable {
    /** A stashed input: its host copy and, once queued, its device copy back. */
    private final class Entry implements Stashed {
        final Shape shape;
        /** The pooled host buffer, and the prefix of it this input fills. */
        final Tensor buffer;
        final Tensor host;
        Tensor prefetched;
        boolean restored;

        Entry(Shape shape, Tensor buffer, Tensor host) {
            this.shape = shape;
            this.buffer = buffer;
            this.host = host;
        }

        @Override
        public Tensor restore() {
            if (restored) {
                throw new IllegalStateException("HostActivationStore: an input restored twice");
            }
            restored = true;
            Tensor device = prefetched != null ? adoptHere(prefetched) : copyBack(this, Scope.current());
            prefetched = null;
            transfers.computeAfterCopies(); // the recomputation reads it
            prefetchBefore(this);
            return device.reshape(shape.toArray());
        }
    }

    /** A device input whose copy to the host may still run. */
    private record Leaving(Tensor device, Transfers.Copy copy) {
    }

    private final Device device;
    private final Scope home;
    private final Transfers transfers;
    private final List<Entry> stashed = new ArrayList<>();
    private final ArrayDeque<Leaving> leaving = new ArrayDeque<>();
    /** Free host buffers (1-D), of any dtype and length. */
    private final List<Tensor> pool = new ArrayList<>();
    private boolean closed;

    public HostActivationStore(Device device) {
        this.device = device;
        this.home = Scope.current();
        this.transfers = Transfers.of(device);
    }

    @Override
    public Stashed stash(Tensor input) {
        checkOpen();
        if (!input.device().equals(device)) {
            throw new IllegalArgumentException("HostActivationStore: " + input.describe() + " is not on " + device);
        }
        recycle();
        // a strided input is copied first, and only that copy freed: its own storage may be a base others view
        Tensor flat = input.isContiguous() ? input : input.contiguous();
        Tensor buffer = take(flat);
        Tensor host = buffer.numel() == flat.numel() ? buffer : prefix(buffer, flat.numel());
        Transfers.Copy copy = transfers.toHostTracked(flat.reshape(flat.numel()), host);
        leaving.add(new Leaving(flat, copy));
        finishLeaving(1); // the previous input's copy is done by now or soon (queued a layer earlier); this one runs on
        Entry e = new Entry(input.shape(), buffer, host);
        stashed.add(e);
        return e;
    }

    /** Frees the device memory of stashed inputs, all but the newest {@code keep}, once their copies are done. */
    private void finishLeaving(int keep) {
        while (leaving.size() > keep) {
            Leaving l = leaving.poll();
            l.copy().awaitAndRelease();
            TensorInternals.storage(l.device()).close();
        }
    }

    /** A new micro-batch's forward: every host buffer of the last one is free again once its copy back is done. */
    private void recycle() {
        if (stashed.isEmpty() || stashed.stream().anyMatch(e -> !e.restored)) {
            return;
        }
        transfers.awaitToDevice();
        for (Entry e : stashed) {
            pool.add(e.buffer);
        }
        stashed.clear();
    }

    /**
     * The smallest free buffer of {@code like}'s dtype that holds it; else a new one, after releasing the smallest free
     * buffer of that dtype (too short for this input, it would stay pinned beside the new one).
     */
    private Tensor take(Tensor like) {
        Tensor fits = null;
        Tensor smallest = null;
        for (Tensor t : pool) {
            if (t.dtype() != like.dtype()) {
                continue;
            }
            if (t.numel() >= like.numel() && (fits == null || t.numel() < fits.numel())) {
                fits = t;
            }
            if (smallest == null || t.numel() < smallest.numel()) {
                smallest = t;
            }
        }
        if (fits != null) {
            pool.remove(fits);
            return fits;
        }
        if (smallest != null) {
            pool.remove(smallest);
            TensorInternals.storage(smallest).close();
        }
        try (Scope.Entered in = home.enter(); Scope.Entered c = Scope.countAs(MemoryCategory.ACTIVATIONS);
             Autograd.GradMode off = Autograd.noGrad()) {
            return Tensor.empty(Shape.of(like.numel()), like.dtype(), device, Placement.HOST_MAPPED);
        }
    }

    /** The first {@code n} elements of a pooled buffer (a view: closing nothing). */
    private static Tensor prefix(Tensor buffer, long n) {
        try (Autograd.GradMode off = Autograd.noGrad()) {
            return buffer.slice(0, 0, n);
        }
    }

    /** Queues entry e's copy back into a new device tensor of {@code scope}, after the device work queued so far. */
    private Tensor copyBack(Entry e, Scope scope) {
        finishLeaving(0); // its own copy to the host first
        Tensor back;
        try (Scope.Entered in = scope.enter(); Scope.Entered c = Scope.countAs(MemoryCategory.ACTIVATIONS)) {
            back = Tensor.empty(Shape.of(e.host.numel()), e.host.dtype(), device);
        }
        transfers.afterCompute(); // the new block's last user on the compute stream is done before the copy writes it
        transfers.toDevice(e.host, back);
        transfers.markToDevice();
        return back;
    }

    /** Queues the copy back of the newest input stashed before {@code e} and not yet restored (the next one backward needs). */
    private void prefetchBefore(Entry e) {
        int at = stashed.indexOf(e);
        for (int i = at - 1; i >= 0; i--) {
            Entry next = stashed.get(i);
            if (!next.restored) {
                if (next.prefetched == null) {
                    next.prefetched = copyBack(next, home);
                }
                return;
            }
        }
    }

    /** Moves a prefetched tensor from the store's scope to the current one (the recomputation's), which frees it. */
    private static Tensor adoptHere(Tensor t) {
        Scope.current().adopt(TensorInternals.storage(t));
        return t;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("HostActivationStore: closed");
        }
    }

    /** Waits for the copies in flight and releases the copy streams; the host buffers belong to the store's scope. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            finishLeaving(0);
        } finally {
            transfers.close();
        }
    }
}
