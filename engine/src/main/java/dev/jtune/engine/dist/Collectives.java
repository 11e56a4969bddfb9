package dev.jtune.engine.dist;

import dev.jtune.engine.Tensor;

/**
 * The collective operations data-parallel training uses, over the ranks of one world. Production runs NCCL
 * ({@link NcclCollectives}); the cpu tests run an in-process stand-in. Every rank calls the same operations in the same
 * order, with contiguous tensors of one shape and dtype on the device the world serves; the operations are queued on
 * that device's stream, in order with its other work.
 */
public interface Collectives extends AutoCloseable {
    /** How values from the ranks combine. */
    enum Reduction { SUM, AVG, MAX }

    /** This process's rank, 0 to {@link #worldSize()} - 1. */
    int rank();

    int worldSize();

    /** {@code t} = the reduction over the ranks of {@code t}, in place. */
    void allReduce(Tensor t, Reduction op);

    /**
     * {@link #allReduce} queued behind the work queued so far on the device's stream but run beside what is queued
     * after it (a stream of its own), so a gradient bucket is summed while backward goes on. {@code t} must not be
     * written, and its sum not read, until {@link #awaitOverlapped()}. Calls run in order among themselves. By
     * default: {@link #allReduce}, in line.
     */
    default void allReduceOverlapped(Tensor t, Reduction op) {
        allReduce(t, op);
    }

    /** Makes the work queued on the device's stream from now on wait for every {@link #allReduceOverlapped} so far. */
    default void awaitOverlapped() {
    }

    /** {@code out} [n / world] = this rank's shard (the rank-th of equal parts) of the reduction over the ranks of {@code in} [n]. */
    void reduceScatter(Tensor in, Tensor out, Reduction op);

    /** A collective queued beside the device's stream ({@link #reduceScatterOverlapped}). */
    @FunctionalInterface
    interface Overlap {
        /** Already done (run in line). */
        Overlap DONE = () -> { };

        /**
         * Makes the work queued on the device's stream from now on wait for this collective (and the overlapped ones
         * before it); until then its input must not change nor be freed, nor its output be read. Idempotent.
         */
        void await();
    }

    /**
     * {@link #reduceScatter} queued behind the work queued so far on the device's stream but run beside what is queued
     * after it (as {@link #allReduceOverlapped}), so a gradient bucket is reduce-scattered while backward goes on; the
     * returned {@link Overlap} joins it back. Calls run in order among themselves and with {@link #allReduceOverlapped},
     * and {@link #awaitOverlapped()} joins them too. By default: {@link #reduceScatter}, in line.
     */
    default Overlap reduceScatterOverlapped(Tensor in, Tensor out, Reduction op) {
        reduceScatter(in, out, op);
        return Overlap.DONE;
    }

    /** {@code out} [world * n] = every rank's {@code in} [n], in rank order. */
    void allGather(Tensor in, Tensor out);

    /**
     * {@link #allGather} queued behind the work queued so far on the device's stream but run beside what is queued
     * after it (as {@link #reduceScatterOverlapped}), so the next layer's weights are gathered while this one computes;
     * the returned {@link Overlap} joins it back (until then {@code out} must not be read nor {@code in} change). By
     * default: {@link #allGather}, in line.
     */
    default Overlap allGatherOverlapped(Tensor in, Tensor out) {
        allGather(in, out);
        return Overlap.DONE;
    }

    /**
     * {@link #allGatherOverlapped} of {@code in} kept where the collective cannot read it as it is (pinned host memory:
     * ZeRO stage 3's parts beside weight offload): copied first into {@code staging}, device memory of its length, in
     * the collective's own order (so a later call may reuse the staging once this gather has read it). By default:
     * the copy and {@link #allGatherOverlapped}, in line.
     */
    default Overlap allGatherStagedOverlapped(Tensor in, Tensor staging, Tensor out) {
        dev.jtune.engine.Ops.copyInto(in, staging);
        return allGatherOverlapped(staging, out);
    }

    /** {@code t} = rank {@code root}'s {@code t}. */
    void broadcast(Tensor t, int root);

    /** Stops every pending operation now (a peer failed or timed out); nothing may be called after it but {@link #close()}. */
    void abort();

    /** Waits for the pending operations and frees the world's resources; after {@link #abort()}, frees only. */
    @Override
    void close();
}
