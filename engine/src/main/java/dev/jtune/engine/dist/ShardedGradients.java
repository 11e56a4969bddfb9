package dev.jtune.engine.dist;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.optim.FlatLayout;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * ZeRO stage 2's gradients: each rank keeps only its shard of the summed gradients; a parameter's whole gradient exists
 * only while backward adds into it, in a transient bucket.
 *
 * <p>Each group's flat layout (the optimizer's, one per device and dtype) is cut into buckets of whole parameters, of
 * at most {@code bucketBytes} where a parameter allows (one larger than that is a bucket alone), from the layout's end
 * (backward produces the last layers' gradients first). A bucket of {@code n} elements is split into the ranks' equal
 * parts of {@code part} elements (rounded up to the layout's alignment; the bucket padded to {@code world x part}): rank
 * r owns elements [r x part, (r + 1) x part) of every bucket, and its persistent shard holds those parts one after
 * another ({@link Segment#shardOffset()}), so the optimizer's state follows the same layout (ZeRO stage 1's
 * {@code ShardedAdamW} over these segments).
 *
 * <p>A bucket's storage is allocated at its first contribution in a backward and is each of its parameters'
 * gradient ({@link Autograd.GradientListener#redirect}: the parameters hold no gradient of their own). When it is
 * complete ({@link BucketOrder}: counts learned from earlier backwards, buckets in a fixed order, latest-used
 * parameters first) it is reduce-scattered, summed into this rank's shard and freed, while backward goes on. Every
 * backward, not only a step's last, is followed by {@link #reduce()}, which reduces the buckets left: so a micro-batch's
 * whole gradient never exists at once. Before any count is learned, a parameter counts as complete after its first
 * contribution, so the first backward frees its buckets as it goes too; its parameters' further contributions (a
 * tied embedding's per loss chunk, a weight used twice) then come late, and it teaches the real counts.
 *
 * <p>Reduce-scatters run beside backward ({@link Collectives#reduceScatterOverlapped}: NCCL on a stream of its own),
 * at most {@link #IN_FLIGHT} buckets' worth at a time: a bucket's memory is freed, and its part added into the shard,
 * only after the device's stream has waited for its collective, so nothing reuses memory a collective still reads.
 * Every rank calls {@link #reduce()} the same number of times a step (a rank with fewer micro-batches reduces empty
 * rounds). A contribution to a bucket already reduced goes aside (the first backward's extra contributions; counts
 * that grow later: a longer batch in more tiles), into a buffer of the bucket's padded length; the ranks then agree
 * which buckets had such contributions (a small MAX all-reduce and a host read) and reduce-scatter those buffers as
 * they are: after each backward in the first step (its first backward has them as a rule), once a step at
 * {@link #finish()} afterwards (the buffers then live to the step's end; counts rarely grow).
 */
public final class ShardedGradients implements AutoCloseable {
    /**
     * One bucket of a group: layout elements [start, end), each rank's part of {@code part} elements from
     * {@code start + rank x part} (cut at {@code end}), at {@code shardOffset} in every rank's shard; {@code unit}: the
     * unit (decoder layer) all its parameters belong to, whose weights ZeRO stage 3 shards by these parts, or -1.
     */
    public record Segment(long start, long end, long part, long shardOffset, int unit) {
        /** A segment of no unit. */
        public Segment(long start, long end, long part, long shardOffset) {
            this(start, end, part, shardOffset, -1);
        }


        /** This rank's layout elements of the bucket: [from, to), empty when from == to. */
        public long from(int rank) {
            return Math.min(start + rank * part, end);
        }

        public long to(int rank) {
            return Math.min(start + (rank + 1) * part, end);
        }

        /** Whether layout entry e lies in this segment (a bucket holds whole parameters). */
        public boolean holds(FlatLayout.Entry e) {
            return e.offset() >= start && e.end() <= end;
        }
    }

    /** One flat layout's parameters, its buckets in layout order, and this rank's shard of their summed gradients. */
    public record Group(FlatLayout layout, List<Tensor> parameters, List<Segment> segments, Tensor shard) {
        public DType dtype() {
            return shard.dtype();
        }

        public Device device() {
            return shard.device();
        }
    }

    /**
     * A bucket in reduction order: its group, segment, parameters (indices into {@link #leaves}) and storage now;
     * {@code home}: the scope of its parameters, where its buffers are allocated (taken at construction: ZeRO stage 3
     * frees the values of a unit's parameters, and their scope with them).
     */
    private static final class Bucket {
        final Group group;
        final Segment segment;
        final int[] leaves;
        final int earliestUse;
        final Scope home;
        Tensor storage;

        Bucket(Group group, Segment segment, int[] leaves, int earliestUse, Scope home) {
            this.group = group;
            this.segment = segment;
            this.leaves = leaves;
            this.earliestUse = earliestUse;
            this.home = home;
        }
    }

    /** A bucket's reduce-scatter in flight: the storage it reads, the part it writes, and how to join it. */
    private record InFlight(Bucket bucket, Tensor storage, Tensor part, Collectives.Overlap overlap) {
    }

    private final Collectives world;
    private final List<Group> groups = new ArrayList<>();
    private final List<Tensor> leaves = new ArrayList<>();
    private final Map<Tensor, Integer> leafIndex = new IdentityHashMap<>();
    /** Per parameter: its bucket (index in reduction order) and its first element in that bucket. */
    private final int[] bucketOf;
    private final long[] offsetInBucket;
    private final List<Bucket> buckets;
    private final BucketOrder order;
    /**
     * Reduce-scatters beside backward not yet landed, oldest first. Each holds its bucket's memory until it lands, so
     * at most {@link #IN_FLIGHT} buckets' worth stay in flight ({@link #inFlightBytes} up to IN_FLIGHT x the bucket
     * size): more would give back stage 2's saving, and a bucket larger than that (a parameter alone, as 270M's tied
     * embedding) lands at once.
     */
    private final java.util.ArrayDeque<InFlight> inFlight = new java.util.ArrayDeque<>();
    static final int IN_FLIGHT = 2;
    private final long bucketBytes;
    private long inFlightBytes;
    /**
     * Per bucket (reduction order), this round's contributions that came after it was reduced, in a buffer of the
     * bucket's padded length (null: none), reduce-scattered as it is when the ranks agree.
     */
    private final Tensor[] late;
    private int early;
    /** Steps finished ({@link #finish()}): every rank counts the same. */
    private long steps;
    private long lateReductions;

    /**
     * Sharded gradients for {@code groups} (each: name to parameter, one device and floating dtype, in the optimizer's
     * layout order), buckets of at most {@code bucketBytes}; {@code useOrder}: the trained parameters in the order the
     * model uses them, which fixes the reduction order. Every rank passes the same. The shards are allocated in the
     * current scope, counted as GRADIENTS.
     */
    public ShardedGradients(Collectives world, List<SequencedMap<String, Tensor>> groups, long bucketBytes, List<Tensor> useOrder) {
        this(world, groups, bucketBytes, useOrder, Map.of());
    }

    /**
     * As above, a bucket also cut wherever the parameters' unit changes ({@code unitOf}: a parameter's unit, a decoder
     * layer, by identity; absent: none), so each bucket lies in one unit ({@link Segment#unit()}): ZeRO stage 3 keeps
     * a rank's part of a unit's trained weights in the very parts its gradients and state take.
     */
    public ShardedGradients(Collectives world, List<SequencedMap<String, Tensor>> groups, long bucketBytes, List<Tensor> useOrder,
                            Map<Tensor, Integer> unitOf) {
        Map<Tensor, Integer> use = BucketOrder.useIndex(useOrder, bucketBytes);
        this.world = java.util.Objects.requireNonNull(world, "world");
        this.bucketBytes = bucketBytes;
        List<Bucket> all = new ArrayList<>();
        List<long[]> placeOf = new ArrayList<>(); // per parameter: {bucket in 'all', offset in bucket}
        for (SequencedMap<String, Tensor> params : groups) {
            FlatLayout layout = FlatLayout.ofParameters("ShardedGradients", params);
            List<Tensor> ps = List.copyOf(params.values());
            int first = leaves.size();
            for (Tensor p : ps) {
                leafIndex.put(p, leaves.size());
                leaves.add(p);
                placeOf.add(null);
            }
            int[] units = ps.stream().mapToInt(p -> unitOf.getOrDefault(p, -1)).toArray();
            List<int[]> cuts = cut(layout, ps.getFirst().dtype().bytesFor(1), bucketBytes, units); // entry ranges, layout order
            List<Segment> segments = new ArrayList<>();
            long shardAt = 0;
            for (int[] c : cuts) {
                long start = layout.entries().get(c[0]).offset();
                long end = c[1] + 1 < layout.entries().size() ? layout.entries().get(c[1] + 1).offset() : layout.numel();
                long part = FlatLayout.roundUp(Math.ceilDiv(end - start, world.worldSize()));
                segments.add(new Segment(start, end, part, shardAt, units[c[0]]));
                shardAt += part;
            }
            Tensor shard;
            try (Scope.Entered e = Scope.countAs(MemoryCategory.GRADIENTS)) {
                shard = Tensor.zeros(Shape.of(shardAt), ps.getFirst().dtype(), ps.getFirst().device());
            }
            Group g = new Group(layout, ps, List.copyOf(segments), shard);
            this.groups.add(g);
            for (int s = 0; s < cuts.size(); s++) {
                int[] c = cuts.get(s);
                int[] in = new int[c[1] - c[0] + 1];
                int earliest = Integer.MAX_VALUE;
                for (int i = c[0]; i <= c[1]; i++) {
                    in[i - c[0]] = first + i;
                    earliest = Math.min(earliest, use.getOrDefault(ps.get(i), -1));
                    placeOf.set(first + i, new long[] {all.size(), layout.entries().get(i).offset() - segments.get(s).start()});
                }
                all.add(new Bucket(g, segments.get(s), in, earliest, dev.jtune.engine.backend.TensorInternals.storage(leaves.get(in[0])).owner()));
            }
        }
        // reduction order: latest-used first; ties keep the end-first order they were cut in
        List<Integer> byOrder = new ArrayList<>();
        for (int k = all.size() - 1; k >= 0; k--) { // cut in layout order: reversed, the end comes first
            byOrder.add(k);
        }
        byOrder.sort(Comparator.comparingInt((Integer k) -> all.get(k).earliestUse).reversed());
        int[] position = new int[all.size()];
        List<Bucket> ordered = new ArrayList<>();
        for (int k : byOrder) {
            position[k] = ordered.size();
            ordered.add(all.get(k));
        }
        this.buckets = List.copyOf(ordered);
        this.bucketOf = new int[leaves.size()];
        this.offsetInBucket = new long[leaves.size()];
        for (int i = 0; i < leaves.size(); i++) {
            bucketOf[i] = position[(int) placeOf.get(i)[0]];
            offsetInBucket[i] = placeOf.get(i)[1];
        }
        this.order = new BucketOrder(buckets.stream().map(b -> b.leaves).toArray(int[][]::new), leaves.size(), this::reduceScatter);
        this.late = new Tensor[buckets.size()];
        Autograd.GradientListener listener = new Autograd.GradientListener() {
            @Override
            public Tensor redirect(Tensor leaf) {
                return target(leafIndex.get(leaf));
            }

            @Override
            public void added(Tensor leaf) {
                order.added(leafIndex.get(leaf));
            }
        };
        for (Tensor leaf : leaves) {
            if (leaf.grad() != null) {
                throw new IllegalArgumentException("ShardedGradients: " + leaf.describe() + " already holds a gradient of its own");
            }
            Autograd.listenGradient(leaf, listener);
        }
        order.assumeOneContributionEach(); // else the first backward would hold every bucket to its end
        order.start();
    }

    /**
     * A layout's entries in buckets of whole parameters, in layout order, each [first, last] entry: cut from the end,
     * a bucket grows while it stays within {@code bucketBytes} (its first parameter always goes in) and its entries'
     * {@code units} are one.
     */
    static List<int[]> cut(FlatLayout layout, long elementBytes, long bucketBytes, int[] units) {
        List<int[]> out = new ArrayList<>();
        int last = layout.entries().size() - 1;
        long bytes = 0;
        for (int i = last; i >= 0; i--) {
            long size = layout.entries().get(i).numel() * elementBytes;
            if (i < last && bytes > 0 && (bytes + size > bucketBytes || units[i] != units[i + 1])) {
                out.addFirst(new int[] {i + 1, last});
                last = i;
                bytes = 0;
            }
            bytes += size;
        }
        out.addFirst(new int[] {0, last});
        return out;
    }

    /** The groups, in the order given: their layouts, buckets and this rank's shards. */
    public List<Group> groups() {
        return groups;
    }

    /** Where a contribution to parameter {@code i} goes: its view in its bucket (allocated now if needed), or aside. */
    private Tensor target(int i) {
        int k = bucketOf[i];
        Bucket b = buckets.get(k);
        if (order.reduced(k)) {
            if (late[k] == null) {
                late[k] = transientBuffer(b, Tensor::zeros);
            }
            return view(late[k], i);
        }
        if (b.storage == null) {
            b.storage = transientBuffer(b, Tensor::zeros);
        }
        return view(b.storage, i);
    }

    /** Parameter i's place in a buffer of its bucket's layout. */
    private Tensor view(Tensor bucket, int i) {
        Tensor leaf = leaves.get(i);
        try (Autograd.GradMode off = Autograd.noGrad()) {
            return bucket.slice(0, offsetInBucket[i], offsetInBucket[i] + leaf.numel()).reshape(leaf.shape().toArray());
        }
    }

    /** How a buffer is made: {@code Tensor::zeros} or {@code Tensor::empty}. */
    private interface Allocation {
        Tensor make(Shape shape, DType dtype, Device device);
    }

    /**
     * A buffer of bucket {@code b}'s padded length (every rank's part), in its parameters' scope, as a gradient is
     * (backward's own scopes end before the reduction).
     */
    private Tensor transientBuffer(Bucket b, Allocation how) {
        return transientBuffer(b, b.segment.part() * world.worldSize(), how);
    }

    private Tensor transientBuffer(Bucket b, long length, Allocation how) {
        Tensor leaf = leaves.get(b.leaves[0]);
        try (Scope.Entered e = b.home.enter();
             Scope.Entered c = Scope.countAs(MemoryCategory.GRADIENTS)) {
            return how.make(Shape.of(length), leaf.dtype(), leaf.device());
        }
    }

    /**
     * Bucket k (in reduction order) handed to the reduction: reduce-scattered over the ranks beside backward
     * ({@link Collectives#reduceScatterOverlapped}) into a part of its own; the oldest in flight land while more than
     * {@link #IN_FLIGHT} buckets' worth are.
     */
    private void reduceScatter(int k) {
        Bucket b = buckets.get(k);
        if (b.storage == null) { // nothing of it on this rank in this backward: zeros take its place
            b.storage = transientBuffer(b, Tensor::zeros);
        }
        Tensor part = transientBuffer(b, b.segment.part(), Tensor::empty);
        inFlight.addLast(new InFlight(b, b.storage, part, world.reduceScatterOverlapped(b.storage, part, Collectives.Reduction.SUM)));
        inFlightBytes += bytes(b.storage);
        b.storage = null; // the bucket's next storage (next backward) is a new one; this one is freed when it lands
        while (!inFlight.isEmpty() && inFlightBytes > IN_FLIGHT * bucketBytes) {
            land(inFlight.removeFirst());
        }
    }

    /**
     * A reduce-scatter done: the device's stream waits for it, adds the part into the shard, then frees the bucket and
     * the part (in stream order after the wait, so no later work reuses their memory while the collective reads it).
     */
    private void land(InFlight f) {
        f.overlap().await();
        addIntoShard(f.bucket(), f.part());
        inFlightBytes -= bytes(f.storage());
        f.part().close();
        f.storage().close();
    }

    private static long bytes(Tensor t) {
        return t.dtype().bytesFor(t.numel());
    }

    /** Lands every reduce-scatter still in flight, oldest first. */
    private void landAll() {
        while (!inFlight.isEmpty()) {
            land(inFlight.removeFirst());
        }
    }

    /** {@code whole} (a bucket's padded buffer) reduce-scattered in line and this rank's part added into its shard. */
    private void sumIntoShard(Bucket b, Tensor whole) {
        try (Scope tmp = Scope.open("gradient bucket part", MemoryCategory.GRADIENTS)) {
            Tensor part = Tensor.empty(Shape.of(b.segment.part()), whole.dtype(), whole.device());
            world.reduceScatter(whole, part, Collectives.Reduction.SUM);
            addIntoShard(b, part);
        }
    }

    /** This rank's part of bucket {@code b}, summed over the ranks, added into its place in the shard. */
    private static void addIntoShard(Bucket b, Tensor part) {
        try (Autograd.GradMode off = Autograd.noGrad()) {
            Segment seg = b.segment;
            Ops.accumulateInto(b.group.shard().slice(0, seg.shardOffset(), seg.shardOffset() + seg.part()), part);
        }
    }

    /**
     * After each backward (or in its place, on a rank that has no micro-batch left this step): reduces the buckets not
     * reduced yet, in order, and lands every reduce-scatter. Every rank calls it equally often a step. In the first
     * step late contributions are reduced here too (there the first backward's come as a rule, up to a whole bucket
     * each, as 270M's tied embedding's: kept to the step's end they would raise its peak); afterwards they wait for
     * {@link #finish()}.
     */
    public void reduce() {
        order.learn();
        early = order.reduceRest();
        landAll();
        if (steps == 0) {
            resolveLate();
        }
        order.start();
    }

    /**
     * After a step's last {@link #reduce()}, on every rank: from the second step on, the ranks agree which buckets had
     * late contributions in any of the step's backwards (a MAX all-reduce and a host read: one sync a step, not one a
     * micro-batch) and reduce-scatter those into the shards.
     */
    public void finish() {
        if (steps++ > 0) {
            resolveLate();
        }
    }

    /** The late contributions agreed, each agreed bucket's reduce-scattered into the shards, and freed. */
    private void resolveLate() {
        BucketOrder.reduceAgreed(world, late, leaves.getFirst().device(),
                k -> Tensor.zeros(Shape.of(buckets.get(k).segment.part() * world.worldSize()), buckets.get(k).group.dtype(),
                        buckets.get(k).group.device()), // freed with reduceAgreed's scope
                (mineLate, k) -> {
                    sumIntoShard(buckets.get(k), mineLate);
                    lateReductions++;
                });
        BucketOrder.free(late);
    }

    /** Zeroes every shard (the optimizer's zeroGrad after a step). */
    public void zero() {
        for (Group g : groups) {
            dev.jtune.engine.backend.Backends.of(g.shard()).fill(g.shard(), 0);
        }
    }

    /** Buckets reduce-scattered during the last backward, before its {@link #reduce()}. */
    public int reducedDuringBackward() {
        return early;
    }

    /** Buckets reduced again for late contributions, over the run. */
    public long lateReductions() {
        return lateReductions;
    }

    /** Bucket lengths (elements, padded to the ranks' parts), in reduction order. */
    public List<Long> bucketLengths() {
        return buckets.stream().map(b -> b.segment.part() * world.worldSize()).toList();
    }

    /** Stops listening to the parameters' gradients and frees the transient buckets (the shards belong to their scope). */
    @Override
    public void close() {
        for (InFlight f : inFlight) {
            f.overlap().await(); // their memory must outlive the collectives reading it
            f.part().close();
            f.storage().close();
        }
        inFlight.clear();
        inFlightBytes = 0;
        for (Tensor leaf : leaves) {
            if (!leaf.isClosed()) {
                Autograd.listenGradient(leaf, null);
            }
        }
        for (Bucket b : buckets) {
            if (b.storage != null) {
                b.storage.close();
                b.storage = null;
            }
        }
        BucketOrder.free(late);
    }
}
