package dev.jtune.engine.dist;

import dev.jtune.cuda.CudaException;
import dev.jtune.cuda.Nccl;
import dev.jtune.cuda.NcclConfigs;
import dev.jtune.cuda.NcclEnvironment;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.CudaEvent;
import dev.jtune.engine.cuda.CudaStream;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Locale;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * {@link Collectives} through NCCL, one communicator per process on its GPU's compute stream. The communicator is
 * non-blocking, so no call can hang the calling thread: every pending state is polled against {@code timeout}
 * (HF's {@code --ddp_timeout}). A watchdog thread checks the communicator's asynchronous error and how long the oldest
 * queued collective has run (an event recorded after each); on an error or a timeout it aborts the communicator, which
 * releases kernels waiting on a dead peer, and the next call on the training thread throws the reason. Every failure
 * names the rank, the operation and NCCL's reason. NVLink multicast is switched off ({@link NcclEnvironment}) before
 * the first NCCL call of the process.
 */
public final class NcclCollectives implements Collectives {
    private static final long POLL_MILLIS = 50;

    /** A queued collective: its completion event and what it was, for a timeout's message. */
    private record InFlight(CudaEvent done, String what, long since) {
    }

    private final CudaBackend gpu;
    private final int rank;
    private final int world;
    private final long timeoutNanos;
    private final MemorySegment comm;
    private final ArrayDeque<InFlight> inFlight = new ArrayDeque<>();
    private final Thread watchdog;
    private volatile String failure; // set once, by whichever thread sees the failure first
    private volatile boolean closed; // read by the watchdog
    /** The stream of the overlapped collectives (made on first use), and whether it has work the compute stream has not awaited. */
    private CudaStream side;
    private boolean sidePending;

    private NcclCollectives(CudaBackend gpu, int rank, int world, Duration timeout, MemorySegment comm) {
        this.gpu = gpu;
        this.rank = rank;
        this.world = world;
        this.timeoutNanos = timeout.toNanos();
        this.comm = comm;
        this.watchdog = Thread.ofPlatform().daemon().name("nccl-watchdog-rank-" + rank).start(this::watch);
    }

    /** A new world's id (NCCL's 128 bytes), made by rank 0 and handed to the others (the rendezvous). */
    public static byte[] newUniqueId(Device device) {
        CudaBackend gpu = CudaBackend.get(device.index());
        gpu.context().makeCurrent();
        NcclEnvironment.apply();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = arena.allocate(Nccl.ncclUniqueId.LAYOUT);
            CudaException.checkNccl(Nccl.ncclGetUniqueId(id), "ncclGetUniqueId");
            return id.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }

    /**
     * Joins the world {@code uniqueId} names as {@code rank} of {@code worldSize}, on {@code device}; every rank calls
     * this with the same id. Waits at most {@code timeout} for the others.
     */
    public static NcclCollectives join(Device device, int rank, int worldSize, byte[] uniqueId, Duration timeout) {
        if (device.kind() != Device.Kind.CUDA) {
            throw new IllegalArgumentException("NCCL serves GPUs, not " + device);
        }
        if (rank < 0 || rank >= worldSize || uniqueId.length != Nccl.NCCL_UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("rank " + rank + " of " + worldSize + " with a " + uniqueId.length + "-byte id");
        }
        CudaBackend gpu = CudaBackend.get(device.index());
        gpu.context().makeCurrent(); // NCCL takes the calling thread's current device
        NcclEnvironment.apply();
        String what = "rank " + rank + ": joining a world of " + worldSize + " (ncclCommInitRankConfig)";
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = arena.allocate(Nccl.ncclUniqueId.LAYOUT);
            id.copyFrom(MemorySegment.ofArray(uniqueId));
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = Nccl.ncclCommInitRankConfig(out, worldSize, id, rank, NcclConfigs.nonBlocking(arena));
            MemorySegment comm = out.get(ADDRESS, 0);
            if (rc != Nccl.ncclInProgress) {
                check(rc, what, comm);
            }
            awaitState(comm, what, timeout.toNanos(), true);
            return new NcclCollectives(gpu, rank, worldSize, timeout, comm);
        }
    }

    /**
     * Polls a communicator until its pending operation is done; on an error or timeout throws (after aborting it, when
     * it is still being made: a made one is aborted once, by {@link #fail}).
     */
    private static void awaitState(MemorySegment comm, String what, long timeoutNanos) {
        awaitState(comm, what, timeoutNanos, false);
    }

    private static void awaitState(MemorySegment comm, String what, long timeoutNanos, boolean abortOnFailure) {
        long start = System.nanoTime();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(JAVA_INT);
            while (true) {
                int s = asyncState(comm, state);
                if (s != Nccl.ncclInProgress) {
                    check(s, what, abortOnFailure ? comm : null, comm);
                    return;
                }
                if (System.nanoTime() - start > timeoutNanos) {
                    if (abortOnFailure) {
                        Nccl.ncclCommAbort(comm);
                    }
                    throw new CollectiveException(what + ": timed out after " + seconds(timeoutNanos) + " (--ddp_timeout)", null);
                }
                sleep(1);
            }
        }
    }

    /** The communicator's state (success, in progress, or its error), or the query's own error; {@code state}: an int to use. */
    private static int asyncState(MemorySegment comm, MemorySegment state) {
        int rc = Nccl.ncclCommGetAsyncError(comm, state);
        return rc != Nccl.ncclSuccess ? rc : state.get(JAVA_INT, 0);
    }

    /** Throws unless {@code rc} is success, after aborting {@code abort} (null: nothing); the message adds NCCL's last error text. */
    private static void check(int rc, String what, MemorySegment abort) {
        check(rc, what, abort, abort);
    }

    private static void check(int rc, String what, MemorySegment abort, MemorySegment comm) {
        if (rc == Nccl.ncclSuccess) {
            return;
        }
        String last = null;
        if (comm != null && !comm.equals(MemorySegment.NULL)) {
            MemorySegment text = Nccl.ncclGetLastError(comm);
            last = text.equals(MemorySegment.NULL) ? null : text.reinterpret(Long.MAX_VALUE).getString(0);
        }
        if (abort != null && !abort.equals(MemorySegment.NULL)) {
            Nccl.ncclCommAbort(abort);
        }
        try {
            CudaException.checkNccl(rc, what);
        } catch (CudaException e) {
            throw new CollectiveException(e.getMessage() + (last == null || last.isBlank() ? "" : " (NCCL: " + last + ")"), e);
        }
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return world;
    }

    @Override
    public void allReduce(Tensor t, Reduction op) {
        check(t, "all-reduce");
        launch("all-reduce of " + t.describe(), gpu.stream(), s -> Nccl.ncclAllReduce(ptr(t), ptr(t), t.numel(), type(t.dtype()), op(op), comm, s));
    }

    @Override
    public void reduceScatter(Tensor in, Tensor out, Reduction op) {
        checkScatter(in, out);
        launch("reduce-scatter of " + in.describe(), gpu.stream(), s -> Nccl.ncclReduceScatter(ptr(in), ptr(out), out.numel(), type(in.dtype()), op(op), comm, s));
    }

    /** A reduce-scatter's operands: this device's, contiguous, one dtype, {@code in} the world's size times {@code out}. */
    private void checkScatter(Tensor in, Tensor out) {
        check(in, "reduce-scatter");
        check(out, "reduce-scatter");
        if (in.dtype() != out.dtype() || in.numel() != out.numel() * world) {
            throw new IllegalArgumentException("reduce-scatter: " + in.describe() + " into " + out.describe() + " over " + world + " ranks");
        }
    }

    @Override
    public void allGather(Tensor in, Tensor out) {
        checkGather(in, out);
        launch("all-gather of " + in.describe(), gpu.stream(), s -> Nccl.ncclAllGather(ptr(in), ptr(out), in.numel(), type(in.dtype()), comm, s));
    }

    private void checkGather(Tensor in, Tensor out) {
        check(in, "all-gather");
        check(out, "all-gather");
        if (in.dtype() != out.dtype() || out.numel() != in.numel() * world) {
            throw new IllegalArgumentException("all-gather: " + in.describe() + " into " + out.describe() + " over " + world + " ranks");
        }
    }

    /** On the side stream, behind what the compute stream has queued so far, as {@link #reduceScatterOverlapped}. */
    @Override
    public Overlap allGatherOverlapped(Tensor in, Tensor out) {
        checkGather(in, out);
        CudaStream stream = sideBehindCompute();
        launch("all-gather (overlapped) of " + in.describe(), stream,
                s -> Nccl.ncclAllGather(ptr(in), ptr(out), in.numel(), type(in.dtype()), comm, s));
        return joinAfter(stream);
    }

    /**
     * On the side stream, behind what the compute stream has queued so far: the copy into the staging (from pinned host
     * memory, over the bus), then the gather; the side stream orders them after the earlier gathers, so the staging is
     * reused only once they read it.
     */
    @Override
    public Overlap allGatherStagedOverlapped(Tensor in, Tensor staging, Tensor out) {
        checkGather(staging, out);
        if (in.dtype() != staging.dtype() || in.numel() != staging.numel() || !in.isContiguous()) {
            throw new IllegalArgumentException("all-gather: " + in.describe() + " staged in " + staging.describe());
        }
        check(staging, "all-gather");
        CudaStream stream = sideBehindCompute();
        long bytes = in.dtype().bytesFor(in.numel());
        CudaException.check(dev.jtune.cuda.CudaDriver.cuMemcpyDtoDAsync_v2(staging.address(), in.address(), bytes, stream.handle()),
                "rank " + rank + ": cuMemcpyDtoDAsync_v2 (staging " + in.describe() + " for an all-gather)");
        launch("all-gather (overlapped) of " + staging.describe(), stream,
                s -> Nccl.ncclAllGather(ptr(staging), ptr(out), staging.numel(), type(staging.dtype()), comm, s));
        return joinAfter(stream);
    }

    @Override
    public void broadcast(Tensor t, int root) {
        check(t, "broadcast");
        if (root < 0 || root >= world) {
            throw new IllegalArgumentException("broadcast from rank " + root + " in a world of " + world);
        }
        launch("broadcast of " + t.describe() + " from rank " + root, gpu.stream(), s -> Nccl.ncclBroadcast(ptr(t), ptr(t), t.numel(), type(t.dtype()), root, comm, s));
    }

    /**
     * On the side stream, behind what the compute stream has queued so far (an event between them); its completion
     * joins the compute stream at {@link #awaitOverlapped()}.
     */
    @Override
    public void allReduceOverlapped(Tensor t, Reduction op) {
        check(t, "all-reduce");
        launch("all-reduce (overlapped) of " + t.describe(), sideBehindCompute(),
                s -> Nccl.ncclAllReduce(ptr(t), ptr(t), t.numel(), type(t.dtype()), op(op), comm, s));
    }

    /**
     * On the side stream, behind what the compute stream has queued so far; an event recorded after it is what
     * {@link Overlap#await()} makes the compute stream wait for.
     */
    @Override
    public Overlap reduceScatterOverlapped(Tensor in, Tensor out, Reduction op) {
        checkScatter(in, out);
        CudaStream stream = sideBehindCompute();
        launch("reduce-scatter (overlapped) of " + in.describe(), stream,
                s -> Nccl.ncclReduceScatter(ptr(in), ptr(out), out.numel(), type(in.dtype()), op(op), comm, s));
        return joinAfter(stream);
    }

    /** What makes the compute stream wait for the side stream's work so far: an event recorded on it now. */
    private Overlap joinAfter(CudaStream stream) {
        CudaEvent done = new CudaEvent(false);
        done.record(stream);
        return new Overlap() {
            private boolean awaited;

            @Override
            public void await() {
                if (!awaited) {
                    awaited = true;
                    failIfFailed();
                    gpu.context().makeCurrent();
                    gpu.stream().waitFor(done);
                    done.close(); // destroying an event a stream still waits on is allowed
                }
            }
        };
    }

    /** The side stream (made on first use), made to wait for what the compute stream has queued so far. */
    private CudaStream sideBehindCompute() {
        failIfFailed();
        gpu.context().makeCurrent();
        if (side == null) {
            side = gpu.newStream();
        }
        try (CudaEvent queued = new CudaEvent(false)) { // destroying an event a stream still waits on is allowed
            queued.record(gpu.stream());
            side.waitFor(queued);
        }
        sidePending = true;
        return side;
    }

    @Override
    public void awaitOverlapped() {
        if (!sidePending) {
            return;
        }
        failIfFailed();
        gpu.context().makeCurrent();
        try (CudaEvent done = new CudaEvent(false)) {
            done.record(side);
            gpu.stream().waitFor(done);
        }
        sidePending = false;
    }

    private interface Call {
        int run(MemorySegment stream);
    }

    /** Queues one collective on {@code stream}, waits out a non-blocking enqueue, and hands it to the watchdog. */
    private void launch(String what, CudaStream stream, Call call) {
        failIfFailed();
        gpu.context().makeCurrent();
        String named = "rank " + rank + ": " + what;
        int rc = call.run(stream.handle());
        try {
            if (rc == Nccl.ncclInProgress) {
                awaitState(comm, named, timeoutNanos);
            } else {
                check(rc, named, null, comm);
            }
        } catch (CollectiveException e) {
            fail(e.getMessage()); // aborts the communicator once; close() then only frees what is left
            throw e;
        }
        CudaEvent done = new CudaEvent(false);
        done.record(stream);
        synchronized (inFlight) {
            inFlight.add(new InFlight(done, named, System.nanoTime()));
        }
    }

    /** The watchdog: completed collectives leave the queue; an async error or an overdue one aborts the world. */
    private void watch() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(JAVA_INT);
            while (!closed && failure == null) {
                gpu.context().makeCurrent();
                int s = asyncState(comm, state);
                if (s != Nccl.ncclSuccess && s != Nccl.ncclInProgress) {
                    fail("rank " + rank + ": the world failed: " + describe(s));
                    return;
                }
                synchronized (inFlight) {
                    while (!inFlight.isEmpty() && inFlight.peek().done().isDone()) {
                        inFlight.poll().done().close();
                    }
                    InFlight oldest = inFlight.peek();
                    if (oldest != null && System.nanoTime() - oldest.since() > timeoutNanos) {
                        fail(oldest.what() + ": not done after " + seconds(timeoutNanos) + " (--ddp_timeout): a peer stopped or is stuck");
                        return;
                    }
                }
                sleep(POLL_MILLIS);
            }
        } catch (RuntimeException e) {
            fail("rank " + rank + ": the NCCL watchdog failed: " + e.getMessage());
        }
    }

    private synchronized void fail(String why) {
        if (failure == null) {
            failure = why;
            Nccl.ncclCommAbort(comm);
        }
    }

    private void failIfFailed() {
        if (closed) {
            throw new IllegalStateException("rank " + rank + ": the world is closed");
        }
        String f = failure;
        if (f != null) {
            throw new CollectiveException(f, null);
        }
    }

    private static String describe(int code) {
        try {
            CudaException.checkNccl(code, "NCCL");
            return "ncclSuccess";
        } catch (CudaException e) {
            return e.getMessage();
        }
    }

    @Override
    public void abort() {
        fail("rank " + rank + ": aborted");
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        watchdog.interrupt();
        try {
            watchdog.join(Duration.ofSeconds(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        boolean failed = failure != null; // read after the watchdog stopped: it may have failed the world meanwhile
        gpu.context().makeCurrent();
        synchronized (inFlight) {
            inFlight.forEach(f -> f.done().close());
            inFlight.clear();
        }
        if (side != null) {
            side.close(); // its queued work still runs (or was released by an abort): the driver frees it after
        }
        if (failed) {
            return; // ncclCommAbort freed the communicator
        }
        String what = "rank " + rank + ": ncclCommFinalize";
        int rc = Nccl.ncclCommFinalize(comm); // flushes what is queued, then the communicator is destroyed
        try {
            if (rc == Nccl.ncclInProgress || rc == Nccl.ncclSuccess) {
                awaitState(comm, what, timeoutNanos);
            } else {
                check(rc, what, null, comm);
            }
        } catch (CollectiveException e) {
            Nccl.ncclCommAbort(comm);
            throw e;
        }
        CudaException.checkNccl(Nccl.ncclCommDestroy(comm), "rank " + rank + ": ncclCommDestroy");
    }

    private void check(Tensor t, String op) {
        if (!t.isContiguous() || !t.device().equals(gpu.device())) {
            throw new IllegalArgumentException(op + ": " + t.describe() + " must be contiguous and on " + gpu.device());
        }
    }

    private static MemorySegment ptr(Tensor t) {
        return MemorySegment.ofAddress(t.address());
    }

    static int type(DType d) {
        return switch (d) {
            case F32 -> Nccl.ncclFloat32;
            case BF16 -> Nccl.ncclBfloat16;
            case F16 -> Nccl.ncclFloat16;
            case F64 -> Nccl.ncclFloat64;
            case I32 -> Nccl.ncclInt32;
            case I64 -> Nccl.ncclInt64;
            case U8 -> Nccl.ncclUint8;
            case NF4 -> throw new IllegalArgumentException("NF4 tensors are not reduced (they are frozen)");
        };
    }

    static int op(Reduction r) {
        return switch (r) {
            case SUM -> Nccl.ncclSum;
            case AVG -> Nccl.ncclAvg;
            case MAX -> Nccl.ncclMax;
        };
    }

    private static String seconds(long nanos) {
        return String.format(Locale.ROOT, "%.0f s", nanos / 1e9);
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
