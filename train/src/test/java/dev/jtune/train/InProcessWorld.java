package dev.jtune.train;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.CollectiveException;
import dev.jtune.engine.dist.Collectives;

import java.time.Duration;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The tests' stand-in for NCCL: {@code size} ranks as threads of one JVM, each with its own {@link Collectives}. Each
 * operation is two barriers: every rank posts its values, each reads what it needs (sums in rank order, in float as a
 * reduction of fp32 values is, in double for F64), then all write back. A rank that aborts, or does not arrive within
 * {@code timeout}, breaks the barrier and every other rank's call throws. Used only in tests; runs use NCCL.
 */
public final class InProcessWorld {
    private final int size;
    private final CyclicBarrier barrier;
    private final double[][] slots;
    private final Duration timeout;

    public InProcessWorld(int size, Duration timeout) {
        this.size = size;
        this.barrier = new CyclicBarrier(size);
        this.slots = new double[size][];
        this.timeout = timeout;
    }

    /** Rank {@code r}'s view of the world. */
    public Collectives rank(int r) {
        return new Member(r);
    }

    /** What one rank runs, given its collectives. */
    @FunctionalInterface
    public interface RankTask<T> {
        T run(Collectives rank) throws Exception;
    }

    /** Runs {@code task} on every rank, each on a thread of its own; returns the ranks' results in rank order (a failure rethrown). */
    public <T> java.util.List<T> run(RankTask<T> task) throws Exception {
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(size);
        try {
            java.util.List<java.util.concurrent.Future<T>> futures = new java.util.ArrayList<>();
            for (int r = 0; r < size; r++) {
                Collectives rank = rank(r);
                futures.add(pool.submit(() -> task.run(rank)));
            }
            java.util.List<T> results = new java.util.ArrayList<>();
            for (java.util.concurrent.Future<T> f : futures) {
                results.add(f.get());
            }
            return results;
        } finally {
            pool.shutdownNow();
        }
    }

    private final class Member implements Collectives {
        private final int rank;

        Member(int rank) {
            this.rank = rank;
        }

        @Override
        public int rank() {
            return rank;
        }

        @Override
        public int worldSize() {
            return size;
        }

        private void await(String what) {
            try {
                barrier.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CollectiveException("rank " + rank + ": " + what + ": interrupted", e);
            } catch (BrokenBarrierException | TimeoutException e) {
                throw new CollectiveException("rank " + rank + ": " + what + ": a peer aborted or did not arrive within " + timeout, e);
            }
        }

        /** Posts this rank's values, then returns every rank's (the caller reads them before the closing barrier). */
        private double[][] exchange(Tensor t, String what) {
            slots[rank] = t.toDoubleArray();
            await(what);
            return slots;
        }

        private void write(Tensor t, double[] values) {
            try (Autograd.GradMode off = Autograd.noGrad()) {
                Ops.copyInto(Tensor.fromArray(values, t.shape(), t.dtype(), t.device()), t);
            }
        }

        /** In rank order, in the tensor's precision as NCCL adds: double for F64, float for the rest. */
        private double[] reduce(double[][] all, Reduction op, boolean f64) {
            double[] r = all[0].clone();
            for (int k = 1; k < size; k++) {
                for (int i = 0; i < r.length; i++) {
                    double v = op == Reduction.MAX ? Math.max(r[i], all[k][i]) : r[i] + all[k][i];
                    r[i] = f64 ? v : (float) v;
                }
            }
            if (op == Reduction.AVG) {
                for (int i = 0; i < r.length; i++) {
                    r[i] = f64 ? r[i] / size : (float) (r[i] / size);
                }
            }
            return r;
        }

        @Override
        public void allReduce(Tensor t, Reduction op) {
            double[] r = reduce(exchange(t, "all-reduce"), op, t.dtype() == DType.F64);
            await("all-reduce");
            write(t, r);
        }

        @Override
        public void reduceScatter(Tensor in, Tensor out, Reduction op) {
            double[] r = reduce(exchange(in, "reduce-scatter"), op, in.dtype() == DType.F64);
            await("reduce-scatter");
            int n = (int) out.numel();
            write(out, java.util.Arrays.copyOfRange(r, rank * n, (rank + 1) * n));
        }

        @Override
        public void allGather(Tensor in, Tensor out) {
            double[][] all = exchange(in, "all-gather");
            int n = (int) in.numel();
            double[] r = new double[n * size];
            for (int k = 0; k < size; k++) {
                System.arraycopy(all[k], 0, r, k * n, n);
            }
            await("all-gather");
            write(out, r);
        }

        @Override
        public void broadcast(Tensor t, int root) {
            double[] r = exchange(t, "broadcast")[root].clone();
            await("broadcast");
            write(t, r);
        }

        @Override
        public void abort() {
            barrier.reset(); // the ranks waiting, and the next to arrive, get a broken barrier
        }

        @Override
        public void close() {
        }
    }
}
