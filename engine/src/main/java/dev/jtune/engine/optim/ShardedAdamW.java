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
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.engine.fused.ParameterTable;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * ZeRO stage 1: {@link AdamW} over a data-parallel world with its master copy and moments sharded across the ranks.
 * Each group's flat layout (the same as AdamW's) is cut into one contiguous shard per rank, {@code shardLength}
 * elements each (a multiple of the layout's alignment; the last may be shorter, or empty). A rank keeps m, v and the
 * master copy of its shard only, so the optimizer state per GPU falls by the world size; the gradients stay whole
 * (the trainer sums them over the ranks first, as plain data parallel does), and so do the parameters.
 *
 * <p>{@link #step} updates this rank's shard of the parameters with AdamW's own multi-tensor kernel (over a table of
 * the pieces of the parameters the shard covers: the same arithmetic per element as AdamW on the whole layout), then
 * gathers every rank's updated shard into every rank's parameters (one all-gather per group). {@link #state} gathers
 * the shards into AdamW's per-parameter state, so a checkpoint is the same whatever the world size and resumes into
 * AdamW or into a sharded optimizer of any size; {@link #restore} takes this rank's shard of such a state.
 * {@link #step} and {@link #state} are collectives: every rank calls them, in the same order.
 */
public final class ShardedAdamW implements Optimizer {

    /** Elements [from, to) of layout entry {@code entry}'s parameter, at {@code offset} in the shard. */
    private record Piece(int entry, long from, long to, long offset) {
        long length() {
            return to - from;
        }
    }

    /**
     * One group's shard: the whole gradient buffer, the shard's range [lo, hi) of its layout, the pieces it covers
     * (their own layout, for the kernel) and the state, {@code shardLength} elements each (the tail past hi - lo zero).
     */
    private record Shard(ParamGroup hyper, GradientBuffer grads, long lo, long hi, long shardLength, List<Piece> pieces,
                         FlatLayout layout, Tensor master, Tensor m, Tensor v) {
    }

    private final Collectives world;
    private final Placement statePlacement;
    private final List<Shard> shards = new ArrayList<>();
    private final SequencedMap<String, Tensor> params;
    private AdamW.Config config;
    private long step;

    /** ZeRO stage 1 over {@code world} for {@code params} (each rank passes its own copies, in the same order). */
    public ShardedAdamW(SequencedMap<String, Tensor> params, AdamW.Config config, ParamGroup.Assignment groupOf, Collectives world) {
        this(params, config, groupOf, world, Placement.DEVICE);
    }

    /**
     * As above with the shard's state at {@code statePlacement}: {@link Placement#HOST_MAPPED} is the paged optimizer
     * ({@code paged_adamw_32bit}, as {@link AdamW}'s) of 1/N of the state per rank.
     */
    public ShardedAdamW(SequencedMap<String, Tensor> params, AdamW.Config config, ParamGroup.Assignment groupOf, Collectives world,
                        Placement statePlacement) {
        this.world = java.util.Objects.requireNonNull(world, "world");
        this.statePlacement = java.util.Objects.requireNonNull(statePlacement, "statePlacement");
        this.config = java.util.Objects.requireNonNull(config, "config");
        this.params = new LinkedHashMap<>(params);
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (var e : AdamW.grouped("ShardedAdamW", params, groupOf).entrySet()) {
                shards.add(shard(e.getKey().hyper(), GradientBuffer.attach(e.getValue())));
            }
        }
    }

    /** The elements per shard of a layout of {@code numel} over {@code ranks}: equal parts, rounded up to the alignment. */
    static long shardLength(long numel, int ranks) {
        return FlatLayout.roundUp(Math.ceilDiv(numel, ranks));
    }

    private Shard shard(ParamGroup hyper, GradientBuffer grads) {
        FlatLayout whole = grads.layout();
        long length = shardLength(whole.numel(), world.worldSize());
        long lo = Math.min(world.rank() * length, whole.numel());
        long hi = Math.min(lo + length, whole.numel());
        List<Piece> pieces = new ArrayList<>();
        List<FlatLayout.Entry> entries = new ArrayList<>();
        for (int i = 0; i < whole.entries().size(); i++) {
            FlatLayout.Entry e = whole.entries().get(i);
            long a = Math.max(e.offset(), lo);
            long b = Math.min(e.end(), hi);
            if (a < b) {
                Piece p = new Piece(i, a - e.offset(), b - e.offset(), a - lo);
                pieces.add(p);
                entries.add(new FlatLayout.Entry(e.name() + "[" + p.from() + ":" + p.to() + "]", Shape.of(p.length()), p.offset()));
            }
        }
        FlatLayout layout = new FlatLayout(entries, hi - lo);
        DType dtype = grads.dtype();
        DType stateType = dtype == DType.F64 ? DType.F64 : DType.F32;
        Shape flat = Shape.of(length);
        try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
            Tensor master = null;
            if (AdamW.needsMaster(dtype)) {
                try (Scope.Entered m = Scope.countAs(MemoryCategory.MASTER_WEIGHTS)) {
                    master = Tensor.zeros(flat, DType.F32, grads.device(), statePlacement);
                }
                for (Piece p : pieces) {
                    Ops.copyInto(piece(grads, p), master.slice(0, p.offset(), p.offset() + p.length()));
                }
            }
            return new Shard(hyper, grads, lo, hi, length, List.copyOf(pieces), layout, master,
                    Tensor.zeros(flat, stateType, grads.device(), statePlacement), Tensor.zeros(flat, stateType, grads.device(), statePlacement));
        }
    }

    /** Piece p of its parameter, flat: a view. */
    private static Tensor piece(GradientBuffer grads, Piece p) {
        Tensor param = grads.parameters().get(p.entry());
        return param.reshape(param.numel()).slice(0, p.from(), p.to());
    }

    /** The first {@code hi - lo} elements of a shard-length buffer (what the kernel steps), or null. */
    private static Tensor used(Shard s, Tensor t) {
        return t == null ? null : t.slice(0, 0, s.hi() - s.lo());
    }

    @Override
    public void step() {
        step++;
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("sharded adamw step")) {
            for (Shard s : shards) {
                if (!s.pieces().isEmpty()) {
                    List<Tensor> views = s.pieces().stream().map(p -> piece(s.grads(), p)).toList();
                    ParameterTable table = new ParameterTable(views, s.layout()); // rebuilt: the parameters may have moved
                    AdamWStep scalars = s.hyper().step(config, step);
                    AdamWKernel.on(s.m()).flatStep(table, s.grads().flat().slice(0, s.lo(), s.hi()), used(s, s.master()),
                            used(s, s.m()), used(s, s.v()), scalars, null);
                }
                gatherParameters(s);
            }
        }
    }

    /** Every rank's updated shard into every rank's parameters: this shard's pieces out, one all-gather, each parameter in. */
    private void gatherParameters(Shard s) {
        Tensor own = Tensor.zeros(Shape.of(s.shardLength()), s.grads().dtype(), s.grads().device());
        for (Piece p : s.pieces()) {
            Ops.copyInto(piece(s.grads(), p), own.slice(0, p.offset(), p.offset() + p.length()));
        }
        Tensor all = Tensor.empty(Shape.of(s.shardLength() * world.worldSize()), own.dtype(), own.device());
        world.allGather(own, all);
        FlatLayout whole = s.grads().layout();
        for (int i = 0; i < whole.entries().size(); i++) {
            FlatLayout.Entry e = whole.entries().get(i);
            Ops.copyInto(all.slice(0, e.offset(), e.end()).reshape(e.shape().toArray()), s.grads().parameters().get(i));
        }
    }

    /**
     * AdamW's per-parameter state ({@code <name>.exp_avg}, {@code .exp_avg_sq}, {@code .master}), gathered from every
     * rank's shard into new tensors of the current scope, in host memory (one kind of one group is whole on the device
     * at a time, so a checkpoint does not bring back the memory the shards saved): a collective.
     */
    @Override
    public SequencedMap<String, Tensor> state() {
        Map<String, Tensor> byName = new LinkedHashMap<>();
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Shard s : shards) {
                gatherState(s, s.m(), ".exp_avg", byName);
                gatherState(s, s.v(), ".exp_avg_sq", byName);
                if (s.master() != null) {
                    gatherState(s, s.master(), ".master", byName);
                }
            }
        }
        SequencedMap<String, Tensor> state = new LinkedHashMap<>();
        for (String name : AdamW.stateNames(params)) {
            state.put(name, byName.get(name));
        }
        return java.util.Collections.unmodifiableSequencedMap(state);
    }

    private void gatherState(Shard s, Tensor buffer, String kind, Map<String, Tensor> out) {
        Tensor gathered = Tensor.empty(Shape.of(s.shardLength() * world.worldSize()), buffer.dtype(), buffer.device());
        world.allGather(buffer, gathered);
        Tensor all = gathered;
        if (buffer.device().kind() != Device.Kind.CPU) {
            all = gathered.to(Device.CPU);
            gathered.close();
        }
        FlatLayout whole = s.grads().layout();
        for (FlatLayout.Entry e : whole.entries()) {
            out.put(e.name() + kind, all.slice(0, e.offset(), e.end()).reshape(e.shape().toArray()));
        }
    }

    /** Takes this rank's shard of a per-parameter state (AdamW's or a sharded optimizer's, of any world size). */
    @Override
    public void restore(Map<String, Tensor> saved, long steps) {
        List<String> names = AdamW.stateNames(params);
        SavedState.checkNames("ShardedAdamW", names, saved);
        for (String name : names) {
            SavedState.checkShape("ShardedAdamW", name, saved.get(name), params.get(name.substring(0, name.lastIndexOf('.'))).shape());
        }
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Shard s : shards) {
                for (Piece p : s.pieces()) {
                    String param = s.grads().layout().entries().get(p.entry()).name();
                    restorePiece(saved.get(param + ".exp_avg"), p, s.m());
                    restorePiece(saved.get(param + ".exp_avg_sq"), p, s.v());
                    if (s.master() != null) {
                        restorePiece(saved.get(param + ".master"), p, s.master());
                    }
                }
            }
        }
        this.step = steps;
    }

    private static void restorePiece(Tensor saved, Piece p, Tensor buffer) {
        Tensor src = saved.reshape(saved.numel()).slice(0, p.from(), p.to());
        Ops.copyInto(src.to(buffer.device()).cast(buffer.dtype()), buffer.slice(0, p.offset(), p.offset() + p.length()));
    }

    @Override
    public long steps() {
        return step;
    }

    /** Zeroes every gradient: one fill per group. */
    @Override
    public void zeroGrad() {
        for (Shard s : shards) {
            s.grads().zero();
        }
    }

    /** The whole gradient buffers (ZeRO stage 1 keeps them whole): the trainer sums them over the ranks, clipping reads them. */
    @Override
    public List<GradientBuffer> gradientBuffers() {
        return shards.stream().map(Shard::grads).toList();
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
