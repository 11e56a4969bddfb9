package dev.jtune.train.loop;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.optim.GradientBuffer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The reductions of a data-parallel step, after every rank's micro-batches ran backward: the gradients, then the step's
 * loss, summed over the ranks (each rank divided its losses by the whole step's label tokens, so the sums are one
 * device's step over every micro-batch). Gradients in the optimizer's flat buffers are summed in buckets of at most
 * {@code bucketBytes} (contiguous pieces of each buffer, no copies); per-tensor gradients one by one, in name order.
 * Every rank makes the same calls in the same order.
 */
final class DataParallel {
    private DataParallel() {
    }

    /** Sums the gradients and {@code stepLoss} (null: this rank ran no micro-batch) over the ranks; returns the summed loss. */
    static Tensor sumOverRanks(Collectives world, Trainable trainable, List<GradientBuffer> flat, long bucketBytes, Tensor stepLoss, Device device) {
        if (!flat.isEmpty()) {
            for (GradientBuffer b : flat) {
                for (Tensor bucket : buckets(b.flat(), bucketBytes)) {
                    world.allReduce(bucket, Collectives.Reduction.SUM);
                }
            }
        } else {
            for (Map.Entry<String, Tensor> p : new java.util.TreeMap<>(trainable.namedParameters()).entrySet()) {
                Tensor g = p.getValue().grad();
                if (g == null) {
                    throw new IllegalStateException("rank " + world.rank() + ": " + p.getKey() + " has no gradient to sum over the ranks");
                }
                world.allReduce(g, Collectives.Reduction.SUM);
            }
        }
        Tensor loss = stepLoss != null ? stepLoss : Tensor.zeros(Shape.of(), DType.F32, device);
        world.allReduce(loss, Collectives.Reduction.SUM);
        return loss;
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

    /** A flat buffer's contiguous pieces of at most {@code bucketBytes} (at least one element each), in order. */
    static List<Tensor> buckets(Tensor flat, long bucketBytes) {
        long n = flat.numel();
        long per = Math.max(1, bucketBytes / Math.max(1, flat.dtype().bytesFor(1)));
        List<Tensor> out = new ArrayList<>();
        Tensor line = flat.reshape(n);
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (long start = 0; start < n; start += per) {
                out.add(line.slice(0, start, Math.min(n, start + per)));
            }
        }
        return out;
    }
}
