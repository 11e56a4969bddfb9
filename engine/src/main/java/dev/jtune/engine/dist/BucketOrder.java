package dev.jtune.engine.dist;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;
import java.util.function.IntFunction;
import java.util.function.ObjIntConsumer;

/**
 * When the gradient buckets of one backward are complete, and the order they are reduced in: the one rule both
 * {@link BucketedGradientSum} (ZeRO stages 0-1) and {@link ShardedGradients} (stage 2) follow.
 *
 * <p>Buckets are numbered in the order they are reduced, the same on every rank. A bucket is complete when each of its
 * parameters has had as many contributions in this backward as it had at most in the backwards {@link #learn learned}
 * from (one a use in the graph; checkpointed recomputations add theirs inside their own backward). A bucket is handed
 * to {@code reduce} as soon as it and every bucket before it are complete, so the ranks' collectives match whatever
 * each rank's backward has reached. Until counts are learned (and for a parameter that got nothing then) no bucket
 * completes: {@link #reduceRest} hands them all over at the end, in the same order.
 */
final class BucketOrder {
    /** Per bucket, the parameters (indices) whose elements it holds. */
    private final int[][] leavesOf;
    /** Per parameter, the buckets holding its elements. */
    private final int[][] bucketsOf;
    private final IntConsumer reduce;
    private final int[] counts;
    private final int[] incomplete;
    /** Contributions per parameter in one backward, the most seen; null before the first {@link #learn}. */
    private int[] expected;
    private int next;

    /** {@code leavesOf}: per bucket in reduction order, its parameters (0 to {@code parameters} - 1). */
    BucketOrder(int[][] leavesOf, int parameters, IntConsumer reduce) {
        this.leavesOf = leavesOf;
        this.reduce = reduce;
        List<List<Integer>> of = new ArrayList<>();
        for (int i = 0; i < parameters; i++) {
            of.add(new ArrayList<>());
        }
        for (int k = 0; k < leavesOf.length; k++) {
            for (int leaf : leavesOf[k]) {
                of.get(leaf).add(k);
            }
        }
        this.bucketsOf = new int[parameters][];
        for (int i = 0; i < parameters; i++) {
            bucketsOf[i] = of.get(i).stream().mapToInt(Integer::intValue).toArray();
        }
        this.counts = new int[parameters];
        this.incomplete = new int[leavesOf.length];
    }

    /**
     * Each parameter's first place in {@code useOrder} (the trained parameters in the order the model uses them), which
     * orders the buckets (latest-used first); checks the bucket size both reductions take.
     */
    static Map<Tensor, Integer> useIndex(List<Tensor> useOrder, long bucketBytes) {
        if (bucketBytes <= 0) {
            throw new IllegalArgumentException("a gradient bucket must hold at least a byte, got " + bucketBytes);
        }
        Map<Tensor, Integer> use = new IdentityHashMap<>();
        for (Tensor t : useOrder) {
            use.putIfAbsent(t, use.size());
        }
        return use;
    }

    /**
     * Late contributions, a buffer per index (null where this rank had none): the ranks agree which indices any rank
     * has (a MAX all-reduce and a host read, so every rank reduces the same ones in the same order), and {@code reduce}
     * gets each such index with this rank's buffer ({@code zerosFor}'s where it had none), in a scope of its own,
     * without recording. Nothing on the meta device (a planned rank: no values to agree on; its late buffers were
     * counted as they came).
     */
    static void reduceAgreed(Collectives world, Tensor[] late, Device device, IntFunction<Tensor> zerosFor, ObjIntConsumer<Tensor> reduce) {
        if (device.kind() == Device.Kind.META) {
            return;
        }
        float[] mine = new float[late.length];
        for (int i = 0; i < late.length; i++) {
            mine[i] = late[i] == null ? 0 : 1;
        }
        float[] any;
        try (Scope tmp = Scope.open("late contribution flags"); Autograd.GradMode off = Autograd.noGrad()) {
            Tensor flags = Tensor.fromArray(mine, Shape.of(mine.length), DType.F32, device);
            world.allReduce(flags, Collectives.Reduction.MAX);
            any = flags.toFloatArray();
        }
        try (Scope tmp = Scope.open("late gradient contributions", MemoryCategory.GRADIENTS); Autograd.GradMode off = Autograd.noGrad()) {
            for (int i = 0; i < any.length; i++) {
                if (any[i] != 0) {
                    reduce.accept(late[i] != null ? late[i] : zerosFor.apply(i), i);
                }
            }
        }
    }

    /** Frees every late buffer and forgets it. */
    static void free(Tensor[] late) {
        for (int i = 0; i < late.length; i++) {
            if (late[i] != null) {
                late[i].close();
                late[i] = null;
            }
        }
    }

    /** A backward starts: no contributions yet, no bucket reduced; buckets of no parameter (gaps) go at once. */
    void start() {
        Arrays.fill(counts, 0);
        for (int k = 0; k < leavesOf.length; k++) {
            incomplete[k] = leavesOf[k].length;
        }
        next = 0;
        if (expected != null) {
            reduceComplete();
        }
    }

    /**
     * Before any backward is learned from: take each parameter as complete after its first contribution, so the first
     * backward reduces its buckets as they fill too; a parameter's further contributions then come late (the caller
     * puts them aside and reduces them after), and {@link #learn} takes the real counts from it.
     */
    void assumeOneContributionEach() {
        if (expected == null) {
            expected = new int[counts.length];
            Arrays.fill(expected, 1);
        }
    }

    /** The buckets holding parameter {@code leaf}. */
    int[] bucketsOf(int leaf) {
        return bucketsOf[leaf];
    }

    /** Whether bucket {@code k} was handed to the reduction in this backward. */
    boolean reduced(int k) {
        return k < next;
    }

    /** Whether some bucket holding {@code leaf} was handed to the reduction in this backward. */
    boolean anyReduced(int leaf) {
        for (int k : bucketsOf[leaf]) {
            if (k < next) {
                return true;
            }
        }
        return false;
    }

    /** A contribution to {@code leaf} was added: hands over the buckets it completes, in order. */
    void added(int leaf) {
        counts[leaf]++;
        if (expected != null && expected[leaf] > 0 && counts[leaf] == expected[leaf]) {
            for (int k : bucketsOf[leaf]) {
                incomplete[k]--;
            }
            reduceComplete();
        }
    }

    private void reduceComplete() {
        while (next < leavesOf.length && incomplete[next] == 0) {
            reduce.accept(next++);
        }
    }

    /** Hands over the buckets not yet reduced, in order; returns how many had been before. */
    int reduceRest() {
        int before = next;
        while (next < leavesOf.length) {
            reduce.accept(next++);
        }
        return before;
    }

    /** Learns the contributions per parameter from the backward that just ran (the most seen so far). */
    void learn() {
        if (expected == null) {
            expected = counts.clone();
        } else {
            for (int i = 0; i < counts.length; i++) {
                expected[i] = Math.max(expected[i], counts[i]);
            }
        }
    }

    /** Buckets, in reduction order. */
    int buckets() {
        return leavesOf.length;
    }
}
