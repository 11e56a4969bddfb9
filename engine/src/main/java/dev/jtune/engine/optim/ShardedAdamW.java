package dev.jtune.engine.optim;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.dist.ShardedGradients;
import dev.jtune.engine.dist.ShardedWeights;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.engine.fused.ParameterTable;
import dev.jtune.engine.optim.host.HostAdamW;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * ZeRO stages 1 to 3: {@link AdamW} (or, with {@link Moments#BLOCKWISE_8BIT}, {@link AdamW8bit}) over a data-parallel
 * world with its master copy and moments sharded across the ranks, in stage 2 the gradients too, in stage 3 the units'
 * trained weights too ({@link #builder}).
 *
 * <p>Each group's flat layout (the same as AdamW's) is cut into segments, each split into the ranks' equal parts
 * ({@link ShardedGradients.Segment}: a multiple of the layout's alignment; the last rank's may be shorter, or empty),
 * and a rank keeps m, v and the master copy of its parts only, one after another: the optimizer state per GPU falls by
 * the world size. Stage 1 has one segment a group: the gradients stay whole in a flat buffer (the trainer sums them
 * over the ranks first, as plain data parallel does). Stage 2 ({@link Builder#shardGradients}) takes the segments of
 * the gradient buckets of {@link ShardedGradients}, whose reduce-scatters leave each rank the summed gradient of
 * exactly its parts: no whole gradient stays on the device, and clipping sums the ranks' squares
 * ({@link #clipHeldGradients}). The parameters stay whole in both. Stage 3 ({@link Builder#shardParameters}) cuts the
 * buckets at the model's units (decoder layers) as well, and keeps this rank's parts of those buckets' weights too, in
 * the same segments as its gradients and state: the step writes them there and gathers nothing, and
 * {@link #trainedRuns()} hands them to {@link ShardedWeights}, which gathers a unit as computation reaches it (the
 * parameters' whole values are then freed); weights of no unit stay whole, as in stage 2.
 *
 * <p>{@link #step} updates this rank's parts of the parameters with AdamW's (or AdamW8bit's) own multi-tensor kernel
 * (over a table of the pieces of the parameters the parts cover: the same arithmetic per element, and under 8-bit
 * moments the same blocks, as the parts start on blocks), then gathers every rank's updated parts into every rank's
 * whole parameters (one all-gather per segment). {@link #state} gathers the shards into the one-device optimizer's
 * per-parameter state, so a checkpoint is the same whatever the world size and stage, and resumes into AdamW (or
 * AdamW8bit) or into a sharded optimizer of any size; {@link #restore} takes this rank's parts of such a state.
 * {@link #step}, {@link #state} and (stage 2) {@link #clipHeldGradients} are collectives: every rank calls them, in the
 * same order.
 */
public final class ShardedAdamW implements Optimizer {

    /** Where a rank's shard of the state lives, and what steps it. */
    public enum State {
        /** The device's memory, stepped by the device's AdamW kernel. */
        DEVICE(Placement.DEVICE),
        /** Page-locked host memory the device maps (the paged optimizer), stepped by the device's kernel over PCIe. */
        PAGED(Placement.HOST_MAPPED),
        /**
         * Host memory stepped by the host's cores ({@link HostAdamW}, as {@code --offload_optimizer cpu} with ZeRO): the
         * rank's summed gradient part is copied to the host, stepped there, and its updated weights copied back into the
         * parameters before the all-gather. Always with an fp32 master copy (the host writes the weights from it).
         */
        HOST(Placement.HOST_MAPPED);

        private final Placement placement;

        State(Placement placement) {
            this.placement = placement;
        }
    }

    /** Elements [from, to) of layout entry {@code entry}'s parameter, in segment {@code segment}, at {@code offset} in the shard. */
    private record Piece(int entry, int segment, long from, long to, long offset) {
        long length() {
            return to - from;
        }
    }

    /**
     * One group's shard: its parameters and layout, the segments (this rank's part of each), the pieces the parts cover
     * (their own layout, for the kernel), this rank's gradient of its parts ({@code used} elements), and the state,
     * {@code shardLength} elements each (past {@code used}, zero). {@code whole}: stage 1's whole gradient buffer, or null.
     * {@link State#HOST} only (else null): the gradient part's host copy and, for 16-bit parameters, the weights the
     * host step writes (fp32 parameters take the master's values). {@code weights}: per segment, stage 3's part
     * of a unit segment's weights (the segment's part length, in the parameters' dtype), null for a segment of no unit.
     */
    private record Shard(ParamGroup hyper, Kind kind, List<Tensor> params, FlatLayout wholeLayout, List<ShardedGradients.Segment> segments,
                         long shardLength, long used, List<Piece> pieces, FlatLayout layout, Tensor grad, GradientBuffer whole,
                         Tensor master, Tensor m, Tensor v, AdamW8bitKernel.State q8, Tensor hostGrad, Tensor hostWeights,
                         List<Tensor> weights) {
        DType dtype() {
            return grad.dtype();
        }

        Device device() {
            return grad.device();
        }
    }

    /** The moments' precision: AdamW's fp32, or bitsandbytes' blockwise 8 bits (as {@link AdamW8bit} keeps them). */
    public enum Moments {
        FP32,
        /**
         * A parameter of at least {@link AdamW8bit#MIN_8BIT_SIZE} elements keeps both moments in 8-bit codes with an
         * fp32 maximum per block of 256; a smaller one fp32 moments, decayed after the step (bitsandbytes' 32-bit path).
         * A rank's parts start on block boundaries, so its blocks are the whole layout's.
         */
        BLOCKWISE_8BIT
    }

    /** How a shard's moments are kept and stepped. */
    private enum Kind {
        /** AdamW's fp32 moments and step. */
        FP32,
        /** bitsandbytes' 8-bit blockwise moments ({@link AdamW8bitKernel}). */
        BLOCKWISE_8BIT,
        /** Under 8-bit moments, a small parameter's fp32 moments: the step without decay, then the decay as one scale. */
        FP32_DECAY_AFTER
    }

    private final Collectives world;
    private final State stateAt;
    private final Moments moments;
    /** The delayed host update's thread, or null (in step). */
    private final java.util.concurrent.ExecutorService background;
    /** Delayed: whether an update was started and has not reached the weights; its host work, or null on the meta device. */
    private boolean updatePending;
    private java.util.concurrent.Future<?> pending;
    private final List<Shard> shards = new ArrayList<>();
    private final SequencedMap<String, Tensor> params;
    /** Stage 2's sharded gradients, or null (stage 1: whole gradient buffers). */
    private final ShardedGradients gradients;
    private AdamW.Config config;
    private long step;

    /**
     * A sharded AdamW over {@code world} for {@code params} (each rank passes its own copies, in the same order): ZeRO
     * stage 1 unless the builder says more.
     */
    public static Builder builder(SequencedMap<String, Tensor> params, AdamW.Config config, Collectives world) {
        return new Builder(params, config, world);
    }

    /** A sharded AdamW's choices; every rank makes the same. */
    public static final class Builder {
        private final SequencedMap<String, Tensor> params;
        private final AdamW.Config config;
        private final Collectives world;
        private ParamGroup.Assignment groups = ParamGroup.Assignment.UNIFORM;
        private State state = State.DEVICE;
        private Moments moments = Moments.FP32;
        private HostOffloadAdamW.Schedule schedule = HostOffloadAdamW.Schedule.IN_STEP;
        private long bucketBytes;
        private List<Tensor> useOrder;
        private Map<Tensor, Integer> unitOf = Map.of();

        private Builder(SequencedMap<String, Tensor> params, AdamW.Config config, Collectives world) {
            this.params = java.util.Objects.requireNonNull(params, "params");
            this.config = java.util.Objects.requireNonNull(config, "config");
            this.world = java.util.Objects.requireNonNull(world, "world");
        }

        /** Each parameter's group (learning rate and decay), as torch's param_groups. Default: one group. */
        public Builder groups(ParamGroup.Assignment assignment) {
            this.groups = java.util.Objects.requireNonNull(assignment, "groups");
            return this;
        }

        /** Where the shard's state lives and what steps it. Default: the device. */
        public Builder state(State where) {
            this.state = java.util.Objects.requireNonNull(where, "state");
            return this;
        }

        /**
         * With {@link State#HOST}: when the host update reaches the weights. {@link HostOffloadAdamW.Schedule#DELAYED}
         * is ZeRO-Offload's one-step delayed update, as the one-rank host optimizer has it: {@link #step()} i copies this
         * rank's gradient part to the host and starts its update on a thread of its own, which runs while the device
         * computes step i + 1; step i + 1 (or {@link #flush()}) waits for it, copies the weights back and gathers them.
         * Default: in step.
         */
        public Builder schedule(HostOffloadAdamW.Schedule when) {
            this.schedule = java.util.Objects.requireNonNull(when, "schedule");
            return this;
        }

        /** The moments' precision. Default: fp32. */
        public Builder moments(Moments precision) {
            this.moments = java.util.Objects.requireNonNull(precision, "moments");
            return this;
        }

        /**
         * ZeRO stage 2: the gradients sharded too, in buckets of at most {@code bucketBytes} reduced in the order
         * {@code useOrder} (the trained parameters as the model uses them) fixes; the caller runs
         * {@link ShardedGradients#reduce()} after every backward and {@link ShardedGradients#finish()} after a step's
         * last ({@link #gradients()}).
         */
        public Builder shardGradients(long bucketBytes, List<Tensor> useOrder) {
            this.bucketBytes = bucketBytes;
            this.useOrder = java.util.Objects.requireNonNull(useOrder, "useOrder");
            return this;
        }

        /**
         * ZeRO stage 3 (with {@link #shardGradients}): the buckets also cut where {@code unitOf} (a parameter's unit, a
         * decoder layer, by identity; absent: none) changes, and this rank's parts of the units' weights kept beside
         * its state ({@link #trainedRuns()}, for {@link ShardedWeights}): once they are handed over and the whole
         * values freed, a step updates those parts only. The whole values are read at {@link #build}.
         */
        public Builder shardParameters(Map<Tensor, Integer> unitOf) {
            this.unitOf = java.util.Objects.requireNonNull(unitOf, "unitOf");
            return this;
        }

        public ShardedAdamW build() {
            if (!unitOf.isEmpty() && useOrder == null) {
                throw new IllegalArgumentException("ShardedAdamW: ZeRO stage 3 shards the gradients too (shardGradients)");
            }
            if (moments == Moments.BLOCKWISE_8BIT && state == State.HOST) {
                throw new IllegalArgumentException("ShardedAdamW: the host step keeps fp32 moments, not 8-bit ones");
            }
            if (schedule == HostOffloadAdamW.Schedule.DELAYED && state != State.HOST) {
                throw new IllegalArgumentException("ShardedAdamW: the delayed step is the host update's, not the " + state + " state's");
            }
            return new ShardedAdamW(this);
        }
    }

    private ShardedAdamW(Builder b) {
        this.world = b.world;
        this.stateAt = b.state;
        this.moments = b.moments;
        this.background = b.schedule == HostOffloadAdamW.Schedule.DELAYED ? StreamedGradients.hostThread("jtune-sharded-offload-update") : null;
        this.config = b.config;
        this.params = new LinkedHashMap<>(b.params);
        try (Autograd.GradMode off = Autograd.noGrad()) {
            List<Group> groups = groups(b.params, b.groups, b.moments);
            if (b.useOrder == null) {
                this.gradients = null;
                for (Group g : groups) {
                    GradientBuffer whole = GradientBuffer.attach(g.params());
                    long length = shardLength(whole.layout().numel(), world.worldSize());
                    ShardedGradients.Segment one = new ShardedGradients.Segment(0, whole.layout().numel(), length, 0);
                    long lo = one.from(world.rank());
                    long hi = one.to(world.rank());
                    shards.add(shard(g, List.copyOf(g.params().values()), whole.layout(), List.of(one), length, whole.flat().slice(0, lo, hi), whole));
                }
            } else {
                this.gradients = new ShardedGradients(world, groups.stream().map(Group::params).toList(), b.bucketBytes, b.useOrder, b.unitOf);
                for (int i = 0; i < groups.size(); i++) {
                    ShardedGradients.Group g = gradients.groups().get(i);
                    ShardedGradients.Segment last = g.segments().getLast();
                    long used = last.shardOffset() + last.to(world.rank()) - last.from(world.rank());
                    shards.add(shard(groups.get(i), g.parameters(), g.layout(), g.segments(), g.shard().numel(), g.shard().slice(0, 0, used), null));
                }
            }
        }
    }

    /** A flat group: its hyper-parameters, how its moments are kept, its parameters in order. */
    private record Group(ParamGroup hyper, Kind kind, SequencedMap<String, Tensor> params) {
    }

    /**
     * AdamW's groups (device, dtype, hyper-parameters); under 8-bit moments each split as bitsandbytes splits it: the
     * parameters of at least {@link AdamW8bit#MIN_8BIT_SIZE} elements in 8 bits, the smaller ones in fp32.
     */
    private static List<Group> groups(SequencedMap<String, Tensor> params, ParamGroup.Assignment groupOf, Moments moments) {
        List<Group> out = new ArrayList<>();
        for (var e : AdamW.grouped("ShardedAdamW", params, groupOf).entrySet()) {
            if (moments == Moments.FP32) {
                out.add(new Group(e.getKey().hyper(), Kind.FP32, e.getValue()));
                continue;
            }
            SequencedMap<String, Tensor> large = new LinkedHashMap<>();
            SequencedMap<String, Tensor> small = new LinkedHashMap<>();
            e.getValue().forEach((name, t) -> (t.numel() >= AdamW8bit.MIN_8BIT_SIZE ? large : small).put(name, t));
            if (!large.isEmpty()) {
                out.add(new Group(e.getKey().hyper(), Kind.BLOCKWISE_8BIT, large));
            }
            if (!small.isEmpty()) {
                out.add(new Group(e.getKey().hyper(), Kind.FP32_DECAY_AFTER, small));
            }
        }
        return out;
    }

    /** The elements per shard of a layout of {@code numel} over {@code ranks}: equal parts, rounded up to the alignment. */
    static long shardLength(long numel, int ranks) {
        return FlatLayout.roundUp(Math.ceilDiv(numel, ranks));
    }

    private Shard shard(Group group, List<Tensor> ps, FlatLayout whole, List<ShardedGradients.Segment> segments, long length,
                        Tensor grad, GradientBuffer wholeGrads) {
        int rank = world.rank();
        List<Piece> pieces = new ArrayList<>();
        List<FlatLayout.Entry> entries = new ArrayList<>();
        for (int s = 0; s < segments.size(); s++) {
            ShardedGradients.Segment seg = segments.get(s);
            long lo = seg.from(rank);
            long hi = seg.to(rank);
            for (int i = 0; i < whole.entries().size(); i++) {
                FlatLayout.Entry e = whole.entries().get(i);
                long a = Math.max(e.offset(), lo);
                long b = Math.min(e.end(), hi);
                if (a < b) {
                    Piece p = new Piece(i, s, a - e.offset(), b - e.offset(), seg.shardOffset() + a - lo);
                    pieces.add(p);
                    entries.add(new FlatLayout.Entry(e.name() + "[" + p.from() + ":" + p.to() + "]", Shape.of(p.length()), p.offset()));
                }
            }
        }
        long used = grad.numel();
        FlatLayout layout = new FlatLayout(entries, used);
        DType dtype = grad.dtype();
        DType stateType = dtype == DType.F64 ? DType.F64 : DType.F32;
        boolean host = stateAt == State.HOST;
        if (host && dtype != DType.F32 && dtype != DType.BF16) {
            throw new IllegalArgumentException("ShardedAdamW: the host step takes F32 or BF16 parameters, not " + dtype + " ones");
        }
        Placement placement = stateAt.placement;
        Shape flat = Shape.of(length);
        try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
            Tensor master = null;
            if (AdamW.needsMaster(dtype) || host) {
                try (Scope.Entered m = Scope.countAs(MemoryCategory.MASTER_WEIGHTS)) {
                    master = Tensor.zeros(flat, DType.F32, grad.device(), placement);
                }
                for (Piece p : pieces) {
                    Ops.copyInto(piece(ps, p), master.slice(0, p.offset(), p.offset() + p.length()));
                }
            }
            Tensor hostGrad = host ? Tensor.zeros(Shape.of(Math.max(used, 1)), dtype, grad.device(), placement) : null;
            Tensor hostWeights = host && dtype != DType.F32 ? Tensor.zeros(Shape.of(Math.max(used, 1)), dtype, grad.device(), placement) : null;
            boolean eightBit = group.kind() == Kind.BLOCKWISE_8BIT;
            return new Shard(group.hyper(), group.kind(), ps, whole, segments, length, used, List.copyOf(pieces), layout, grad, wholeGrads, master,
                    eightBit ? null : Tensor.zeros(flat, stateType, grad.device(), placement),
                    eightBit ? null : Tensor.zeros(flat, stateType, grad.device(), placement),
                    eightBit ? AdamW8bitKernel.State.zeros(length, grad.device(), placement) : null,
                    hostGrad, hostWeights, unitWeights(ps, segments, pieces, dtype, grad.device()));
        }
    }

    /**
     * Stage 3: this rank's part of each unit segment's weights (the padding zero), on the device, counted as WEIGHTS;
     * null for a segment of no unit.
     */
    private static List<Tensor> unitWeights(List<Tensor> ps, List<ShardedGradients.Segment> segments, List<Piece> pieces, DType dtype,
                                            Device device) {
        List<Tensor> weights = new ArrayList<>();
        for (ShardedGradients.Segment seg : segments) {
            try (Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
                weights.add(seg.unit() < 0 ? null : Tensor.zeros(Shape.of(seg.part()), dtype, device));
            }
        }
        for (Piece p : pieces) {
            Tensor part = weights.get(p.segment());
            if (part != null) {
                long at = p.offset() - segments.get(p.segment()).shardOffset();
                Ops.copyInto(piece(ps, p), part.slice(0, at, at + p.length()));
            }
        }
        return java.util.Collections.unmodifiableList(weights);
    }

    /** Whether piece p's weights are stage 3's (kept in its segment's weight part), not the parameter's whole value. */
    private static boolean inUnit(Shard s, Piece p) {
        return s.weights().get(p.segment()) != null;
    }

    /** Where piece p's weights are updated: its place in stage 3's weight part, or a view of its parameter. */
    private static Tensor weightsOf(Shard s, Piece p) {
        if (!inUnit(s, p)) {
            return piece(s.params(), p);
        }
        long at = p.offset() - s.segments().get(p.segment()).shardOffset();
        return s.weights().get(p.segment()).slice(0, at, at + p.length());
    }

    /**
     * Stage 3's parts of the units' weights, one run a unit segment (its parameters laid out as in the segment, each at
     * its first element there): what {@link ShardedWeights} gathers into a unit's slot. Empty below stage 3.
     */
    public List<ShardedWeights.TrainedRun> trainedRuns() {
        List<ShardedWeights.TrainedRun> out = new ArrayList<>();
        for (Shard s : shards) {
            for (int k = 0; k < s.segments().size(); k++) {
                ShardedGradients.Segment seg = s.segments().get(k);
                if (seg.unit() < 0) {
                    continue;
                }
                Map<Tensor, Long> offsets = new java.util.IdentityHashMap<>();
                for (int i = 0; i < s.wholeLayout().entries().size(); i++) {
                    FlatLayout.Entry e = s.wholeLayout().entries().get(i);
                    if (seg.holds(e)) {
                        offsets.put(s.params().get(i), e.offset() - seg.start());
                    }
                }
                out.add(new ShardedWeights.TrainedRun(seg.unit(), s.weights().get(k), offsets));
            }
        }
        return out;
    }

    /** Piece p of its parameter, flat: a view. */
    private static Tensor piece(List<Tensor> ps, Piece p) {
        Tensor param = ps.get(p.entry());
        return param.reshape(param.numel()).slice(0, p.from(), p.to());
    }

    /** The first {@code used} elements of a shard-length buffer (what the kernel steps), or null. */
    private static Tensor used(Shard s, Tensor t) {
        return t == null ? null : t.slice(0, 0, s.used());
    }

    /** The 8-bit state of the first {@code used} elements (a whole number of blocks: the pieces start on blocks). */
    private static AdamW8bitKernel.State used(Shard s, AdamW8bitKernel.State q) {
        long blocks = s.used() / AdamW8bitKernel.BLOCK;
        return new AdamW8bitKernel.State(q.m().slice(0, 0, s.used()), q.absmaxM().slice(0, 0, blocks), q.v().slice(0, 0, s.used()),
                q.absmaxV().slice(0, 0, blocks));
    }

    /**
     * bitsandbytes' 32-bit path for a small parameter under 8-bit moments, as {@link AdamW8bit} steps it: after the step
     * without decay, the weights (the master, for 16-bit ones) scaled by {@code 1 - lr wd}, then rounded into the
     * parameters.
     */
    private static void decayAfter(Shard s, AdamWStep scalars) {
        if (scalars.weightDecay() <= 0) {
            return;
        }
        double keep = 1 - scalars.lr() * scalars.weightDecay();
        for (Piece p : s.pieces()) {
            Tensor target = s.master() != null ? s.master().slice(0, p.offset(), p.offset() + p.length()) : weightsOf(s, p);
            Backends.of(target).scale(target, keep, target);
            if (s.master() != null) {
                Ops.copyInto(target, weightsOf(s, p));
            }
        }
    }

    /** Stage 2's sharded gradients (reduce them after every backward), or empty in stage 1. */
    public java.util.Optional<ShardedGradients> gradients() {
        return java.util.Optional.ofNullable(gradients);
    }

    @Override
    public void step() {
        step++;
        if (background != null) {
            delayedStep();
            return;
        }
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("sharded adamw step")) {
            for (Shard s : shards) {
                if (!s.pieces().isEmpty()) {
                    AdamWStep scalars = s.hyper().step(config, step);
                    if (stateAt == State.HOST) {
                        hostStep(s, scalars);
                    } else {
                        List<Tensor> views = s.pieces().stream().map(p -> weightsOf(s, p)).toList();
                        ParameterTable table = new ParameterTable(views, s.layout()); // rebuilt: the parameters may have moved
                        switch (s.kind()) {
                            case FP32 -> AdamWKernel.on(s.m()).flatStep(table, s.grad(), used(s, s.master()), used(s, s.m()), used(s, s.v()), scalars, null);
                            case BLOCKWISE_8BIT -> AdamW8bitKernel.on(s.grad()).step(table, used(s, s.master()), s.grad(), used(s, s.q8()), scalars, null);
                            case FP32_DECAY_AFTER -> {
                                AdamWKernel.on(s.m()).flatStep(table, s.grad(), used(s, s.master()), used(s, s.m()), used(s, s.v()), scalars.withoutDecay(), null);
                                decayAfter(s, scalars);
                            }
                        }
                    }
                }
                gatherWholeWeights(s);
            }
        }
    }

    /**
     * {@link State#HOST}'s step of one shard: its gradient part to the host (the device's queue drained first, so the host
     * reads what the copy wrote), {@link HostAdamW} over the master and moments on the host's cores (optim.cu's fp32
     * arithmetic), then the updated weights (16-bit, or the master itself for fp32 parameters) back into the parameters'
     * pieces. The next step's host writes come after its own drain, when these copies have landed. Meta only counts.
     */
    private void hostStep(Shard s, AdamWStep scalars) {
        Ops.copyInto(s.grad(), s.hostGrad().slice(0, 0, s.used()));
        if (s.grad().device().kind() == Device.Kind.META) {
            return;
        }
        Backends.of(s.grad()).synchronize();
        hostUpdate(s, scalars);
        weightsFromHost(s);
    }

    /** {@link HostAdamW} over the shard's host gradient, master and moments (optim.cu's fp32 arithmetic). */
    private static void hostUpdate(Shard s, AdamWStep scalars) {
        java.lang.foreign.MemorySegment weights = s.hostWeights() == null ? null : HostOffloadAdamW.host(s.hostWeights());
        HostAdamW.Buffers b = new HostAdamW.Buffers(HostOffloadAdamW.host(s.master()), HostOffloadAdamW.host(s.m()), HostOffloadAdamW.host(s.v()),
                HostOffloadAdamW.host(s.hostGrad()), s.dtype(), weights);
        HostAdamW.step(b, 0, s.used(), HostAdamW.Scalars.of(scalars, 1.0));
    }

    /** The host step's updated weights (16-bit, or the master for fp32 parameters) into the parameters' pieces. */
    private static void weightsFromHost(Shard s) {
        Tensor source = s.hostWeights() != null ? s.hostWeights() : s.master();
        for (Piece p : s.pieces()) {
            Ops.copyInto(source.slice(0, p.offset(), p.offset() + p.length()), weightsOf(s, p));
        }
    }

    /**
     * The delayed host step: the last step's update applied first ({@link #flush}), then this step's gradient parts
     * copied to the host (the device's queue drained) and their update started on the background thread, with this
     * step's scalars. Meta only counts the copies.
     */
    private void delayedStep() {
        flush();
        List<AdamWStep> scalars = new ArrayList<>();
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Shard s : shards) {
                scalars.add(s.hyper().step(config, step));
                if (!s.pieces().isEmpty()) {
                    Ops.copyInto(s.grad(), s.hostGrad().slice(0, 0, s.used()));
                }
            }
        }
        updatePending = true;
        if (shards.isEmpty() || shards.getFirst().device().kind() == Device.Kind.META) {
            return;
        }
        Backends.of(shards.getFirst().grad()).synchronize(); // the host reads what the copies wrote
        pending = background.submit(() -> {
            for (int i = 0; i < shards.size(); i++) {
                if (!shards.get(i).pieces().isEmpty()) {
                    hostUpdate(shards.get(i), scalars.get(i));
                }
            }
        });
    }

    /**
     * The delayed step's pending update, applied: waits for the host, copies the updated weights into this rank's
     * pieces and gathers the whole ones over the ranks (a collective: every rank calls it, as the trainer does before
     * a save, an evaluation and the end). Nothing to do in step.
     */
    @Override
    public void flush() {
        if (!updatePending) {
            return;
        }
        updatePending = false;
        try {
            StreamedGradients.await(pending, "ShardedAdamW", "the host update");
        } finally {
            pending = null;
        }
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("sharded adamw delayed update")) {
            for (Shard s : shards) {
                weightsFromHost(s);
                gatherWholeWeights(s);
            }
        }
    }

    /** The shard's updated whole weights gathered over the ranks, segment by segment (stage 3's unit weights are gathered as computation reaches them). */
    private void gatherWholeWeights(Shard s) {
        for (int k = 0; k < s.segments().size(); k++) {
            if (s.segments().get(k).unit() < 0) {
                gatherParameters(s, k);
            }
        }
    }

    /** Every rank's updated part of segment k into every rank's parameters: this rank's pieces out, one all-gather, each parameter in. */
    private void gatherParameters(Shard s, int k) {
        ShardedGradients.Segment seg = s.segments().get(k);
        Tensor own = Tensor.zeros(Shape.of(seg.part()), s.dtype(), s.device());
        for (Piece p : s.pieces()) {
            if (p.segment() == k) {
                long at = p.offset() - seg.shardOffset();
                Ops.copyInto(piece(s.params(), p), own.slice(0, at, at + p.length()));
            }
        }
        Tensor all = Tensor.empty(Shape.of(seg.part() * world.worldSize()), own.dtype(), own.device());
        world.allGather(own, all);
        for (int i = 0; i < s.wholeLayout().entries().size(); i++) {
            FlatLayout.Entry e = s.wholeLayout().entries().get(i);
            long a = Math.max(e.offset(), seg.start());
            long b = Math.min(e.end(), seg.end());
            if (a < b) {
                Tensor param = s.params().get(i);
                Ops.copyInto(all.slice(0, a - seg.start(), b - seg.start()), param.reshape(param.numel()).slice(0, a - e.offset(), b - e.offset()));
            }
        }
    }

    /**
     * AdamW's per-parameter state ({@code <name>.exp_avg}, {@code .exp_avg_sq}, {@code .master}), gathered from every
     * rank's shard into new tensors of the current scope, in host memory (one kind of one segment is whole on the
     * device at a time, so a checkpoint does not bring back the memory the shards saved): a collective.
     */
    @Override
    public SequencedMap<String, Tensor> state() {
        flush(); // the delayed update's state and weights together
        Map<String, Tensor> byName = new LinkedHashMap<>();
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Shard s : shards) {
                if (s.kind() == Kind.BLOCKWISE_8BIT) {
                    gatherState(s, s.q8().m(), ".exp_avg.q8", byName);
                    gatherBlocks(s, s.q8().absmaxM(), ".exp_avg.absmax", byName);
                    gatherState(s, s.q8().v(), ".exp_avg_sq.q8", byName);
                    gatherBlocks(s, s.q8().absmaxV(), ".exp_avg_sq.absmax", byName);
                } else {
                    gatherState(s, s.m(), ".exp_avg", byName);
                    gatherState(s, s.v(), ".exp_avg_sq", byName);
                }
                if (s.master() != null) {
                    gatherState(s, s.master(), ".master", byName);
                }
            }
        }
        SequencedMap<String, Tensor> state = new LinkedHashMap<>();
        for (String name : stateShapes().keySet()) {
            state.put(name, byName.get(name));
        }
        return java.util.Collections.unmodifiableSequencedMap(state);
    }

    /**
     * The checkpoint state's names in order, each with its shape: AdamW's ({@code .exp_avg}, {@code .exp_avg_sq}), or
     * under 8-bit moments AdamW8bit's for its 8-bit parameters ({@code .exp_avg.q8}, {@code .exp_avg.absmax}, ...), and
     * {@code .master} for 16-bit parameters: so a checkpoint moves between the sharded and the one-device optimizer.
     */
    private SequencedMap<String, Shape> stateShapes() {
        SequencedMap<String, Shape> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            String n = e.getKey();
            Shape shape = e.getValue().shape();
            if (moments == Moments.BLOCKWISE_8BIT && e.getValue().numel() >= AdamW8bit.MIN_8BIT_SIZE) {
                Shape blocks = Shape.of(Math.ceilDiv(e.getValue().numel(), AdamW8bitKernel.BLOCK));
                out.put(n + ".exp_avg.q8", shape);
                out.put(n + ".exp_avg.absmax", blocks);
                out.put(n + ".exp_avg_sq.q8", shape);
                out.put(n + ".exp_avg_sq.absmax", blocks);
            } else {
                out.put(n + ".exp_avg", shape);
                out.put(n + ".exp_avg_sq", shape);
            }
            if (AdamW.needsMaster(e.getValue().dtype())) {
                out.put(n + ".master", shape);
            }
        }
        return out;
    }

    /** One kind of state, segment by segment: each parameter lies in one segment (a stage 1 group's one, or its bucket). */
    private void gatherState(Shard s, Tensor buffer, String kind, Map<String, Tensor> out) {
        gather(s, buffer, 1, kind, out);
    }

    /**
     * The 8-bit state's block maxima, segment by segment: a rank's part of a segment is a whole number of blocks, and a
     * parameter's blocks follow its first element's.
     */
    private void gatherBlocks(Shard s, Tensor absmax, String kind, Map<String, Tensor> out) {
        gather(s, absmax, AdamW8bitKernel.BLOCK, kind, out);
    }

    /**
     * {@code buffer} (one value per {@code per} elements of the shard) gathered segment by segment into host memory,
     * each parameter's values under its name + {@code kind}: of its shape when per element, else flat.
     */
    private void gather(Shard s, Tensor buffer, int per, String kind, Map<String, Tensor> out) {
        for (ShardedGradients.Segment seg : s.segments()) {
            long from = seg.shardOffset() / per;
            long length = seg.part() / per;
            Tensor gathered = Tensor.empty(Shape.of(length * world.worldSize()), buffer.dtype(), buffer.device());
            world.allGather(buffer.slice(0, from, from + length).contiguous(), gathered);
            Tensor all = gathered;
            if (buffer.device().kind() != Device.Kind.CPU) {
                all = gathered.to(Device.CPU);
                gathered.close();
            }
            for (FlatLayout.Entry e : s.wholeLayout().entries()) {
                if (seg.holds(e)) {
                    Tensor mine = all.slice(0, (e.offset() - seg.start()) / per, Math.ceilDiv(e.end() - seg.start(), per));
                    out.put(e.name() + kind, per == 1 ? mine.reshape(e.shape().toArray()) : mine);
                }
            }
        }
    }

    /**
     * Takes this rank's parts of a per-parameter state (AdamW's, AdamW8bit's under 8-bit moments, or a sharded
     * optimizer's, of any world size and stage).
     */
    @Override
    public void restore(Map<String, Tensor> saved, long steps) {
        SequencedMap<String, Shape> shapes = stateShapes();
        SavedState.checkNames("ShardedAdamW", shapes.keySet(), saved);
        shapes.forEach((name, shape) -> SavedState.checkShape("ShardedAdamW", name, saved.get(name), shape));
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Shard s : shards) {
                for (Piece p : s.pieces()) {
                    String param = s.wholeLayout().entries().get(p.entry()).name();
                    if (s.kind() == Kind.BLOCKWISE_8BIT) {
                        restorePiece(saved.get(param + ".exp_avg.q8"), p, s.q8().m());
                        restoreBlocks(saved.get(param + ".exp_avg.absmax"), p, s.q8().absmaxM());
                        restorePiece(saved.get(param + ".exp_avg_sq.q8"), p, s.q8().v());
                        restoreBlocks(saved.get(param + ".exp_avg_sq.absmax"), p, s.q8().absmaxV());
                    } else {
                        restorePiece(saved.get(param + ".exp_avg"), p, s.m());
                        restorePiece(saved.get(param + ".exp_avg_sq"), p, s.v());
                    }
                    if (s.master() != null) {
                        // the host step keeps an fp32 master of fp32 parameters too: there it is the parameter itself
                        // (stage 3's part of it, which the weights' restore wrote)
                        Tensor master = saved.get(param + ".master");
                        if (master == null && inUnit(s, p)) {
                            Ops.copyInto(weightsOf(s, p).cast(DType.F32), s.master().slice(0, p.offset(), p.offset() + p.length()));
                        } else {
                            restorePiece(master != null ? master : params.get(param), p, s.master());
                        }
                    }
                }
            }
        }
        this.step = steps;
    }

    /** Piece p's blocks' maxima (its elements start on a block) from a parameter's saved maxima. */
    private static void restoreBlocks(Tensor saved, Piece p, Tensor absmax) {
        int block = AdamW8bitKernel.BLOCK;
        long first = p.from() / block;
        long count = Math.ceilDiv(p.to(), block) - first;
        Ops.copyInto(saved.slice(0, first, first + count).to(absmax.device()).cast(absmax.dtype()),
                absmax.slice(0, p.offset() / block, p.offset() / block + count));
    }

    private static void restorePiece(Tensor saved, Piece p, Tensor buffer) {
        Tensor src = saved.reshape(saved.numel()).slice(0, p.from(), p.to());
        Ops.copyInto(src.to(buffer.device()).cast(buffer.dtype()), buffer.slice(0, p.offset(), p.offset() + p.length()));
    }

    @Override
    public long steps() {
        return step;
    }

    /** Zeroes every gradient: one fill per group (stage 1's whole buffer, stage 2's shard). */
    @Override
    public void zeroGrad() {
        if (gradients != null) {
            gradients.zero();
        } else {
            for (Shard s : shards) {
                s.whole().zero();
            }
        }
    }

    /** Stage 1's whole gradient buffers (the trainer sums them over the ranks, clipping reads them); none in stage 2. */
    @Override
    public List<GradientBuffer> gradientBuffers() {
        return gradients != null ? List.of() : shards.stream().map(Shard::whole).toList();
    }

    /**
     * Stage 2: the global norm of the summed gradients, from every rank's shard (the ranks' sums of squares summed: a
     * collective), each shard clipped with the same factor when {@code maxNorm > 0}. Empty in stage 1.
     */
    @Override
    public java.util.Optional<GradClip.GradNorm> clipHeldGradients(double maxNorm) {
        if (gradients == null) {
            return java.util.Optional.empty();
        }
        List<Tensor> mine = shards.stream().map(Shard::grad).toList();
        return java.util.Optional.of(GradClip.clipShards(mine, maxNorm, t -> world.allReduce(t, Collectives.Reduction.SUM)));
    }

    /** Stops stage 2's gradients listening to the parameters. */
    @Override
    public void close() {
        if (gradients != null) {
            gradients.close();
        }
        if (background != null) {
            if (pending != null) {
                pending.cancel(false); // an update not flushed is dropped (flushing gathers: a collective, not for a close)
            }
            background.shutdown();
        }
    }

    @Override
    public void learningRate(double lr) {
        config = config.withLr(lr);
    }

    @Override
    public double learningRate() {
        return config.lr();
    }

    /** Elements of optimizer state this rank holds per group (m's length: the shard's), for tests. */
    public List<Long> shardLengths() {
        return shards.stream().map(Shard::shardLength).toList();
    }
}
