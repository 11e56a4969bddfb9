package dev.jtune.train.loop;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.BucketedGradientSum;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.optim.GradientBuffer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The reductions of a data-parallel step, after every rank's micro-batches ran backward: the gradients, then the step's
 * loss, summed over the ranks (each rank divided its losses by the whole step's label tokens, so the sums are one
 * device's step over every micro-batch). Gradients in the optimizer's flat buffers are summed in buckets
 * ({@link BucketedGradientSum}: during the rank's last backward of the step as they complete); per-tensor gradients one
 * by one after backward, in name order. Under ZeRO stage 2 the gradients are reduce-scattered after each backward
 * ({@code ShardedGradients}) and only the loss is summed here.
 * Every rank makes the same calls in the same order.
 */
final class DataParallel {
    private DataParallel() {
    }

    /**
     * Sums the gradients and {@code stepLoss} (null: this rank ran no micro-batch) over the ranks; returns the summed
     * loss. {@code flat}: the optimizer's flat buffers' buckets (some already summed during backward), or null for
     * per-tensor gradients.
     */
    static Tensor sumOverRanks(Collectives world, Trainable trainable, BucketedGradientSum flat, Tensor stepLoss, Device device) {
        if (flat != null) {
            flat.finish();
        } else {
            for (Map.Entry<String, Tensor> p : new java.util.TreeMap<>(trainable.namedParameters()).entrySet()) {
                Tensor g = p.getValue().grad();
                if (g == null) {
                    throw new IllegalStateException("rank " + world.rank() + ": " + p.getKey() + " has no gradient to sum over the ranks");
                }
                world.allReduce(g, Collectives.Reduction.SUM);
            }
        }
        return sumLossOverRanks(world, stepLoss, device);
    }

    /** The step's loss summed over the ranks ({@code stepLoss} null: this rank ran no micro-batch). */
    static Tensor sumLossOverRanks(Collectives world, Tensor stepLoss, Device device) {
        Tensor loss = stepLoss != null ? stepLoss : Tensor.zeros(Shape.of(), DType.F32, device);
        world.allReduce(loss, Collectives.Reduction.SUM);
        return loss;
    }

    /** The optimizer's flat gradient buffers in buckets summed as backward fills them, or null when it has none. */
    static BucketedGradientSum bucketsOf(Collectives world, Trainable trainable, List<GradientBuffer> flat, long bucketBytes) {
        return flat.isEmpty() ? null : new BucketedGradientSum(world, flat, bucketBytes, List.copyOf(trainable.namedParameters().values()));
    }

    /** Every rank's device peak (allocated, reserved), gathered to every rank: "rank 0 1.23 GiB (reserved 1.40), ...". */
    static String peaksByRank(Collectives world, MemoryStats mine, Device device) {
        double gib = 1L << 30;
        Tensor own = Tensor.fromArray(new double[] {mine.peakAllocated() / gib, mine.peakReserved() / gib}, Shape.of(2), DType.F32, device);
        Tensor all = Tensor.zeros(Shape.of(2L * world.worldSize()), DType.F32, device);
        world.allGather(own, all);
        double[] v = all.toDoubleArray();
        StringBuilder sb = new StringBuilder();
        for (int r = 0; r < world.worldSize(); r++) {
            sb.append(r == 0 ? "" : ", ").append(String.format(java.util.Locale.ROOT, "rank %d %.2f GiB (reserved %.2f)", r, v[2 * r], v[2 * r + 1]));
        }
        own.close();
        all.close();
        return sb.toString();
    }

    /** Rank {@code rank}'s share of {@code items} among {@code ranks}: items rank, rank + ranks, ... (in order). */
    static <T> List<T> shareOf(List<T> items, int rank, int ranks) {
        if (ranks < 1 || rank < 0 || rank >= ranks) {
            throw new IllegalArgumentException("rank " + rank + " of " + ranks);
        }
        List<T> mine = new ArrayList<>();
        for (int i = rank; i < items.size(); i += ranks) {
            mine.add(items.get(i));
        }
        return mine;
    }
}
