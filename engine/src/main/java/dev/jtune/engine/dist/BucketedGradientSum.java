package dev.jtune.engine.dist;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.optim.FlatLayout;
import dev.jtune.engine.optim.GradientBuffer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The sum over the ranks of a data-parallel step's gradients, in buckets that are reduced while backward goes on (as
 * PyTorch's DDP does). The flat gradient buffers are cut into contiguous pieces of at most {@code bucketBytes}, from
 * each buffer's end (backward produces the last layers' gradients first); the buckets are summed in one fixed order on
 * every rank: the bucket whose earliest-used parameter comes latest in the model first.
 *
 * <p>A bucket is complete when each of its parameters has had as many contributions in this backward as it had at
 * most in earlier armed ones (one a use in the graph, learned: checkpointed recomputations add theirs inside their own
 * backward). During the rank's last backward of a step ({@link #arm()}), each bucket is handed to
 * {@link Collectives#allReduceOverlapped} as soon as it and every bucket before it in the order are complete;
 * {@link #finish()} sums the rest in order and joins the device's stream with the overlapped sums. Until the counts are
 * learned (and for a parameter the first backward gave nothing) nothing is summed before {@link #finish()}: the same
 * sums in the same order, later. The ranks' collectives match because the order is fixed, whatever each rank's
 * backward has reached.
 *
 * <p>The counts may grow (a longer batch in more tiles or loss chunks, more images): a contribution to a parameter
 * whose bucket is already being summed goes aside ({@link Autograd.GradientListener#redirect}), into a buffer of its
 * own; {@link #finish()} then has the ranks agree which parameters had such late contributions (a small all-reduce and a
 * host read every step, from the second on), sums those buffers over the ranks and adds them into the gradients.
 */
public final class BucketedGradientSum implements AutoCloseable {
    /** A contiguous piece of one buffer and the parameters (indices into {@link #leaves}) whose elements it holds. */
    private record Bucket(Tensor piece, int[] leaves, int earliestUse) {
    }

    private final Collectives world;
    private final List<Tensor> leaves = new ArrayList<>();
    private final List<String> names = new ArrayList<>();
    private final Map<Tensor, Integer> leafIndex = new IdentityHashMap<>();
    /** Buckets in the order they are summed. */
    private final List<Bucket> buckets;
    /** When the buckets of the armed backward complete; sums them in order. */
    private final BucketOrder order;
    private boolean armed;
    /** Buckets summed during the last step's backward (before {@link #finish()}). */
    private int early;
    /** This step's late contributions per parameter (null: none). */
    private final Tensor[] late;
    /** Steps finished; from the second on every rank agrees on the late parameters (the first has none anywhere). */
    private long finished;
    /** Parameters with late contributions summed over the ranks, over the run. */
    private long lateSums;

    /**
     * Buckets of at most {@code bucketBytes} over {@code buffers}; {@code useOrder}: the trained parameters in the order
     * the model uses them (forward), which fixes the summing order; every rank passes the same.
     */
    public BucketedGradientSum(Collectives world, List<GradientBuffer> buffers, long bucketBytes, List<Tensor> useOrder) {
        Map<Tensor, Integer> use = BucketOrder.useIndex(useOrder, bucketBytes);
        this.world = java.util.Objects.requireNonNull(world, "world");
        List<Bucket> all = new ArrayList<>();
        for (GradientBuffer b : buffers) {
            FlatLayout layout = b.layout();
            int first = leaves.size();
            for (int i = 0; i < layout.entries().size(); i++) {
                Tensor leaf = b.parameters().get(i);
                leafIndex.put(leaf, leaves.size());
                leaves.add(leaf);
                names.add(layout.entries().get(i).name());
            }
            for (Piece p : pieces(layout.numel(), b.dtype().bytesFor(1), bucketBytes)) {
                List<Integer> in = new ArrayList<>();
                int earliest = Integer.MAX_VALUE;
                for (int i = 0; i < layout.entries().size(); i++) {
                    FlatLayout.Entry e = layout.entries().get(i);
                    if (e.offset() < p.end() && e.end() > p.start()) {
                        in.add(first + i);
                        earliest = Math.min(earliest, use.getOrDefault(b.parameters().get(i), -1));
                    }
                }
                all.add(new Bucket(flatPiece(b.flat(), p), in.stream().mapToInt(Integer::intValue).toArray(), earliest));
            }
        }
        // latest first; ties (a parameter split over buckets) keep the end-first order they were cut in
        all.sort(Comparator.comparingInt((Bucket k) -> k.earliestUse()).reversed());
        this.buckets = List.copyOf(all);
        this.order = new BucketOrder(buckets.stream().map(Bucket::leaves).toArray(int[][]::new), leaves.size(),
                k -> world.allReduceOverlapped(buckets.get(k).piece(), Collectives.Reduction.SUM));
        this.late = new Tensor[leaves.size()];
        Autograd.GradientListener listener = new Autograd.GradientListener() {
            @Override
            public Tensor redirect(Tensor leaf) {
                return aside(leaf);
            }

            @Override
            public void added(Tensor leaf) {
                BucketedGradientSum.this.added(leaf);
            }
        };
        for (Tensor leaf : leaves) {
            Autograd.listenGradient(leaf, listener);
        }
    }

    /** Elements [start, end) of a flat buffer. */
    record Piece(long start, long end) {
    }

    /** A buffer of {@code numel} elements of {@code elementBytes} cut from its end into pieces of at most {@code bucketBytes}. */
    static List<Piece> pieces(long numel, long elementBytes, long bucketBytes) {
        long per = Math.max(1, bucketBytes / Math.max(1, elementBytes));
        List<Piece> out = new ArrayList<>();
        for (long end = numel; end > 0; end -= per) {
            out.add(new Piece(Math.max(0, end - per), end));
        }
        return out;
    }

    private static Tensor flatPiece(Tensor flat, Piece p) {
        try (Autograd.GradMode off = Autograd.noGrad()) {
            return flat.reshape(flat.numel()).slice(0, p.start(), p.end());
        }
    }

    /** The buckets' element counts, in the order they are summed. */
    public List<Long> bucketLengths() {
        return buckets.stream().map(b -> b.piece().numel()).toList();
    }

    /** The next backward is this rank's last of the step: its complete buckets are summed while it runs. */
    public void arm() {
        order.start();
        armed = true;
    }

    /** Where a contribution to {@code leaf} goes: aside when a bucket holding it is summed or being summed, else null. */
    private Tensor aside(Tensor leaf) {
        if (!armed) {
            return null;
        }
        int i = leafIndex.get(leaf);
        if (!order.anyReduced(i)) {
            return null;
        }
        if (late[i] == null) { // in the parameter's scope, as its gradient is (backward's own ends before finish)
            try (Scope.Entered e = TensorInternals.storage(leaf).owner().enter(); Scope.Entered c = Scope.countAs(MemoryCategory.GRADIENTS)) {
                late[i] = Tensor.zeros(leaf.shape(), leaf.dtype(), leaf.device());
            }
        }
        return late[i];
    }

    private void added(Tensor leaf) {
        if (armed) { // else an earlier micro-batch: its gradients are summed with the last one's
            order.added(leafIndex.get(leaf));
        }
    }

    /**
     * After this rank's backwards of the step (none, if it ran no micro-batch): sums the buckets not yet summed, in
     * order, and makes the device's stream wait for every sum; then the late contributions (see the class comment).
     * Learns the contributions per parameter from the armed backwards (the largest count seen).
     */
    public void finish() {
        if (armed) {
            order.learn();
            early = order.reduceRest();
        } else {
            order.start();
            order.reduceRest();
            early = 0;
        }
        armed = false;
        world.awaitOverlapped();
        if (finished++ > 0) {
            sumLate();
        }
        BucketOrder.free(late);
    }

    /** Every rank's late parameters agreed (a max over the ranks), their late contributions summed and added in. */
    private void sumLate() {
        BucketOrder.reduceAgreed(world, late, leaves.getFirst().device(), i -> {
            Tensor leaf = leaves.get(i);
            return Tensor.zeros(leaf.shape(), leaf.dtype(), leaf.device());
        }, (mineLate, i) -> {
            world.allReduce(mineLate, Collectives.Reduction.SUM);
            Ops.accumulateInto(leaves.get(i).grad(), mineLate);
            lateSums++;
        });
    }

    /** Parameters whose late contributions were summed apart, over the run (see the class comment). */
    public long lateSums() {
        return lateSums;
    }

    /** Buckets summed during the last armed backward, before {@link #finish()}. */
    public int summedDuringBackward() {
        return early;
    }

    /** Stops listening to the parameters' gradients. */
    @Override
    public void close() {
        for (Tensor leaf : leaves) {
            if (!leaf.isClosed()) {
                Autograd.listenGradient(leaf, null);
            }
        }
        BucketOrder.free(late);
    }
}
