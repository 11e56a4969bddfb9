package dev.jtune.engine.optim;

import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Storage;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.HostVisible;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.optim.host.HostGradients;
import dev.jtune.engine.optim.host.Transfers;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Gradients streamed to the host as backward produces them (ZeRO-Offload's gradient path on one device): each
 * contribution to a parameter's gradient is copied to the host on the copy stream while backward goes on, and a host
 * thread adds it into an fp32 accumulator, so the device holds no gradient buffer, only the contributions whose copies
 * are in flight (at most {@link #HELD_BYTES} of them beyond the newest; older ones go back to the allocator behind a
 * compute-stream wait for their copies, so the host never waits for the device here). The accumulators are what the
 * host update reads.
 * <p>
 * Per parameter: the first contribution of a step is stored, later ones added (one fp32 rounding each, where a device
 * buffer would round every sum to the parameter's dtype); a parameter without any is zeroed by {@link #finish}.
 * Contributions land in a pinned staging copy of the parameter's flat range, so a parameter's next contribution waits
 * (on the host) for the add of its previous one. Storage closes and adoptions happen on the training thread.
 */
final class StreamedGradients implements AutoCloseable {
    /** Bytes of contributions kept alive for copies in flight, the newest apart, before the oldest is released. */
    static final long HELD_BYTES = 256L << 20;

    /**
     * One dtype's parameters: their layout, the pinned staging copy of their gradients (host-mapped, the copies'
     * destination), and the host segments of it and of the fp32 accumulator (null on meta).
     */
    record Target(FlatLayout layout, Tensor staging, MemorySegment stagingHost, MemorySegment acc) {
        DType dtype() {
            return staging.dtype();
        }
    }

    /** A contribution kept allocated until its copy to the host ({@code copy}) is done ({@code copied}). */
    private record Held(Storage storage, long bytes, Transfers.Copy copy, Future<?> copied) {
    }

    private final Transfers transfers;
    private final Scope home;
    private final List<Target> targets;
    private final int[][] counts;
    private final Future<?>[][] adds;
    private final ArrayDeque<Held> held = new ArrayDeque<>();
    /** Per (group, entry) taking row-sparse contributions: the pinned buffer their ids are copied into. */
    private final java.util.Map<Long, Tensor> idStaging = new java.util.HashMap<>();
    private long heldBytes;
    /** Since the last {@link #reset}: contributions, their elements, nanoseconds the training thread waited, host adds. */
    private long contributions;
    private long elements;
    private long waitedNanos;
    private final java.util.concurrent.atomic.AtomicLong addNanos = new java.util.concurrent.atomic.AtomicLong();
    private final ExecutorService worker = hostThread("jtune-gradient-accumulate");

    /** {@code home}: the scope that keeps contributions alive past backward while their copies run. */
    StreamedGradients(Transfers transfers, Scope home, List<Target> targets) {
        this.transfers = transfers;
        this.home = home;
        this.targets = List.copyOf(targets);
        this.counts = new int[targets.size()][];
        this.adds = new Future<?>[targets.size()][];
        for (int g = 0; g < targets.size(); g++) {
            counts[g] = new int[targets.get(g).layout().entries().size()];
            adds[g] = new Future<?>[counts[g].length];
        }
    }

    /** Backward's contribution to parameter {@code entry} of group {@code group} (see {@link dev.jtune.engine.Autograd.GradientSink}). */
    void accept(int group, int entry, Tensor contribution, boolean owned) {
        Target t = targets.get(group);
        FlatLayout.Entry e = t.layout().entries().get(entry);
        boolean assign = counts[group][entry]++ == 0;
        if (t.acc() == null) { // meta: no bytes to move, but the memory a GPU would hold is held
            holdNewestOnly(contribution, owned);
            return;
        }
        Tensor src = contribution.isContiguous() ? contribution : contribution.contiguous();
        boolean srcOwned = src != contribution || owned;
        if (src != contribution && owned) {
            TensorInternals.storage(contribution).close();
        }
        begin(group, entry, src.numel());
        Transfers.Copy copy = transfers.toHostTracked(src.reshape(src.numel()), t.staging().slice(0, e.offset(), e.end()));
        Future<?> copied = queueAdd(group, entry, copy,
                () -> HostGradients.accumulate(t.stagingHost(), t.dtype(), t.acc(), e.offset(), e.end(), assign));
        if (!srcOwned) {
            long w1 = System.nanoTime();
            await(adds[group][entry]); // the caller keeps the contribution: it must be copied before we return
            waitedNanos += System.nanoTime() - w1;
            return;
        }
        if (copy == Transfers.Copy.DONE) {
            TensorInternals.storage(src).close();
            return;
        }
        hold(TensorInternals.storage(src), copy, copied);
    }

    /**
     * A contribution of {@code elements} to parameter {@code entry} of group {@code group} starts: counted, and once the
     * parameter's previous contribution was added (its staging range is free then; the wait is timed).
     */
    private void begin(int group, int entry, long elements) {
        contributions++;
        this.elements += elements;
        long w0 = System.nanoTime();
        await(adds[group][entry]);
        waitedNanos += System.nanoTime() - w0;
    }

    /**
     * Has the host thread wait for {@code copy}, then run {@code add} (timed) as the parameter's pending add; returns the
     * copy's completion (the device memory it read is free then; the add reads the staging copy, so it need not wait).
     */
    private Future<?> queueAdd(int group, int entry, Transfers.Copy copy, Runnable add) {
        java.util.concurrent.CompletableFuture<Void> copied = new java.util.concurrent.CompletableFuture<>();
        adds[group][entry] = worker.submit(() -> {
            try {
                copy.awaitAndRelease();
            } finally {
                copied.complete(null);
            }
            long a0 = System.nanoTime();
            add.run();
            addNanos.addAndGet(System.nanoTime() - a0);
        });
        return copied;
    }

    /**
     * Keeps {@code storage} (adopted into the home scope) until {@code copied}, first releasing what is over the bound:
     * those go back to the allocator behind a compute-stream wait for their copies, not a host wait. (Waiting on the
     * host tied it to the device's progress: a contribution's copy starts only when the device has computed it, so the
     * host stopped queueing work until then and the device ran dry after every large contribution, such as the tied
     * LM head's 335 MB: about a quarter of the 270M full fine-tune's step, measured.)
     */
    private void hold(Storage storage, Transfers.Copy copy, Future<?> copied) {
        releaseDone();
        while (!held.isEmpty() && heldBytes + storage.bytes() > HELD_BYTES) {
            Held oldest = held.poll();
            if (!oldest.copied().isDone()) {
                oldest.copy().computeWaits();
            }
            release(oldest);
        }
        home.adopt(storage);
        held.add(new Held(storage, storage.bytes(), copy, copied));
        heldBytes += storage.bytes();
    }

    /**
     * A row-sparse contribution to parameter {@code entry} of group {@code group} (see
     * {@link dev.jtune.engine.Autograd.RowGradientSink}): {@code rows} [N, D] for rows {@code ids} of the [V, D]
     * parameter. Device copies of both are queued to the host (the rows into the parameter's staging range, the ids into
     * a pinned buffer of their own) and the host thread adds each row into the accumulator ({@link HostGradients#addRows});
     * so an embedding's lookup moves and adds N x D elements, not V x D. False (take the dense form) when the rows are
     * not the parameter's dtype, its shape is not [V, D], or they would not fit its staging range.
     */
    boolean acceptRows(int group, int entry, Tensor ids, Tensor rows) {
        Target t = targets.get(group);
        FlatLayout.Entry e = t.layout().entries().get(entry);
        long n = ids.numel();
        if (rows.dtype() != t.dtype() || e.shape().rank() != 2 || rows.rank() != 2 || rows.dim(0) != n
                || rows.dim(1) != e.shape().dim(1) || rows.numel() > e.numel() || n > Integer.MAX_VALUE) {
            return false;
        }
        boolean assign = counts[group][entry]++ == 0;
        // our own copies: the caller's tensors may be freed (and their memory reused) before the copies to the host run
        Tensor r = rows.copy();
        Tensor id = ids.contiguous().reshape(n).copy();
        if (t.acc() == null) {
            TensorInternals.storage(id).close();
            holdNewestOnly(r, true);
            return true;
        }
        begin(group, entry, rows.numel()); // the ids' staging is the parameter's too
        Tensor idStage = idStaging(group, entry, n);
        transfers.afterCompute();
        transfers.toHost(id, idStage.slice(0, 0, n));
        Transfers.Copy copy = transfers.toHostTracked(r.reshape(r.numel()), t.staging().slice(0, e.offset(), e.offset() + r.numel()));
        MemorySegment idsHost = ((HostVisible) TensorInternals.storage(idStage)).hostSegment();
        Future<?> copied = queueAdd(group, entry, copy, () -> HostGradients.addRows(t.stagingHost().asSlice(t.dtype().bytesFor(e.offset())),
                t.dtype(), idsHost, (int) n, e.shape().dim(1), t.acc(), e.offset(), e.shape().dim(0), assign));
        if (copy == Transfers.Copy.DONE) {
            TensorInternals.storage(r).close();
            TensorInternals.storage(id).close();
            return true;
        }
        hold(TensorInternals.storage(id), copy, copied);
        hold(TensorInternals.storage(r), copy, copied);
        return true;
    }

    /** The pinned buffer that parameter {@code entry}'s row ids are copied into, grown to at least {@code n} ids. */
    private Tensor idStaging(int group, int entry, long n) {
        long key = ((long) group << 32) | entry;
        Tensor stage = idStaging.get(key);
        if (stage == null || stage.numel() < n) {
            if (stage != null) {
                TensorInternals.storage(stage).close();
            }
            try (Scope.Entered in = home.enter(); Scope.Entered c = Scope.countAs(MemoryCategory.GRADIENTS)) {
                stage = Tensor.zeros(Shape.of(n), DType.I32, targets.get(group).staging().device(), Placement.HOST_MAPPED);
            }
            idStaging.put(key, stage);
        }
        return stage;
    }

    /** Waits for every contribution's copy and add, and frees the contributions still held. */
    void drain() {
        for (Future<?>[] group : adds) {
            for (Future<?> f : group) {
                await(f);
            }
        }
        while (!held.isEmpty()) {
            release(held.poll());
        }
    }

    /** After {@link #drain}: zeroes the accumulators of parameters that received nothing this step. */
    void finish() {
        for (int g = 0; g < targets.size(); g++) {
            Target t = targets.get(g);
            if (t.acc() == null) {
                continue;
            }
            List<FlatLayout.Entry> entries = t.layout().entries();
            for (int i = 0; i < entries.size(); i++) {
                if (counts[g][i] == 0) {
                    HostGradients.zero(t.acc(), entries.get(i).offset(), entries.get(i).end());
                }
            }
        }
    }

    /** The sum of squares of every accumulated gradient (after {@link #finish}; 0 on meta). */
    double sumOfSquares() {
        double sum = 0;
        for (Target t : targets) {
            if (t.acc() != null) {
                sum += HostGradients.sumOfSquares(t.acc(), 0, t.layout().numel());
            }
        }
        return sum;
    }

    /** The next contribution of every parameter starts a new accumulation (after {@link #drain}). */
    void reset() {
        for (int[] c : counts) {
            Arrays.fill(c, 0);
        }
        contributions = 0;
        elements = 0;
        waitedNanos = 0;
        addNanos.set(0);
    }

    /**
     * Where the time went since the last {@link #reset} (a measurement aid): contributions and their elements, the
     * training thread's waits in {@link #accept} (for a parameter's previous add, or for copies holding memory), and
     * the host thread's adds.
     */
    String report() {
        return String.format(java.util.Locale.ROOT, "%d contributions of %.1fM elements, training thread waited %.1f ms, host adds %.1f ms",
                contributions, elements / 1e6, waitedNanos / 1e6, addNanos.get() / 1e6);
    }

    /** Whether any parameter received a contribution since the last {@link #reset}. */
    boolean any() {
        for (int[] c : counts) {
            for (int x : c) {
                if (x > 0) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * Meta: the model of what a GPU holds. The newest contribution stays allocated until the next one arrives (on a GPU
     * its copy overlaps what backward does next, and the next arrival frees it once copied); earlier ones are freed then,
     * as copies of a few hundred MiB are done within a layer's backward. So the prediction counts the newest
     * contribution beside the next operation's memory, as the GPU does, but none of the 256 MiB a slow host may hold.
     */
    private void holdNewestOnly(Tensor contribution, boolean owned) {
        while (!held.isEmpty()) {
            release(held.poll());
        }
        if (owned) {
            Storage storage = TensorInternals.storage(contribution);
            home.adopt(storage);
            held.add(new Held(storage, storage.bytes(), Transfers.Copy.DONE, java.util.concurrent.CompletableFuture.completedFuture(null)));
            heldBytes += storage.bytes();
        }
    }

    private void releaseDone() {
        while (!held.isEmpty() && held.peek().copied().isDone()) {
            release(held.poll());
        }
    }

    private void release(Held h) {
        h.storage().close();
        heldBytes -= h.bytes();
    }

    private static void await(Future<?> f) {
        await(f, "StreamedGradients", "a gradient's copy to the host");
    }

    /** One daemon thread named {@code name}, for an optimizer's host work beside the device's. */
    static ExecutorService hostThread(String name) {
        return Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            return t;
        });
    }

    /**
     * Waits for {@code f} (null: nothing to wait for), rethrowing its failure as it was thrown (an unchecked one) or
     * wrapped: "{@code owner}: {@code what} failed". Shared by the optimizer's host threads' futures.
     */
    static void await(Future<?> f, String owner, String what) {
        if (f == null) {
            return;
        }
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(owner + ": interrupted waiting for " + what, e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(owner + ": " + what + " failed", e.getCause());
        }
    }

    @Override
    public void close() {
        try {
            drain();
        } finally {
            worker.shutdown();
        }
    }
}
