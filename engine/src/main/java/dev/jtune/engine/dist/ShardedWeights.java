package dev.jtune.engine.dist;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.offload.SlottedUnits;
import dev.jtune.engine.quant.Nf4Tensor;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * ZeRO stage 3's weights of a model's units (its decoder layers): each rank keeps one equal part of every unit's
 * weights, and a unit is all-gathered into one of two device slots when computation reaches it, the next one fetched
 * as the previous is staged ({@link SlottedUnits}).
 *
 * <p>Frozen parameters (QLoRA's NF4 base, frozen dense weights and norms) are kept here: a unit's pieces lie in its
 * slot as they would in one buffer per category (aligned, as {@link SlottedUnits#ALIGN}); that buffer, rounded up to
 * the world's size times the alignment, is cut into the ranks' parts, so the gather writes the slot in place. A
 * frozen parameter's value becomes a placeholder of its shape and dtype on the meta device (nothing to read: a forward
 * outside {@link #acquire} fails loudly instead of reading stale bytes).
 *
 * <p>Trained parameters in a unit (a full fine-tune's weights) are kept by the optimizer, whose stage 3 holds this
 * rank's part of each of their gradient buckets' weights beside the part's gradient and state ({@link TrainedRun}, from
 * {@code optim.ShardedAdamW#trainedRuns}); each run is gathered into its own place in the unit's slot. Their values
 * stay the autograd leaves that the gradients reach, with their memory freed (closed: a read outside a gathered unit
 * fails loudly). Trained parameters given in no run (adapters) stay whole.
 *
 * <p>{@link #gatherWhole} makes frozen values whole again; {@link #withWholeValues} lends every value whole in host
 * memory for a save or a restore (both collectives: every rank calls them). Every rank shards the same units in the
 * same order, then acquires them in the same order (the gathers are collectives).
 */
public final class ShardedWeights extends SlottedUnits {
    /**
     * This rank's part of a run of a unit's trained parameters, laid out as in their gradient bucket: elements
     * [rank x part, (rank + 1) x part) of the run, {@code part} the tensor's length; {@code offsets}: each parameter
     * (its value, by identity) at its first element in the run. The part is the optimizer's (its step writes it).
     */
    public record TrainedRun(int unit, Tensor part, Map<Tensor, Long> offsets) {
        public TrainedRun {
            offsets = java.util.Collections.unmodifiableMap(new java.util.IdentityHashMap<>(offsets));
        }
    }

    /** A trained run placed in its unit's WEIGHTS slot buffer at {@code slotOffset} bytes. */
    private record PlacedRun(TrainedRun run, long slotOffset) {
        long elements(int worldSize) {
            return run.part().numel() * worldSize;
        }
    }

    /** What a unit holds besides its slot layout: its frozen entries and their bytes per category, its trained runs. */
    private record Held(List<Entry> frozen, Map<MemoryCategory, Long> frozenBytes, List<PlacedRun> runs) {
    }

    private final Collectives world;
    /** Per unit, this rank's part of each category's frozen bytes (U8, the unit's rounded frozen bytes / world). */
    private final List<Map<MemoryCategory, Tensor>> parts = new ArrayList<>();
    private final List<Held> held = new ArrayList<>();
    /** Where the frozen parts live: the device, or pinned host memory (beside weight offload: ZeRO-3's offload_param). */
    private final Placement partsAt;
    /** With the parts in host memory: one device buffer per category, of the largest part, each gather's input. */
    private final Map<MemoryCategory, Tensor> staging = new EnumMap<>(MemoryCategory.class);
    /** Gathers queued beside the computation and not yet joined. */
    private final List<Collectives.Overlap> pending = new ArrayList<>();
    /** The scope the parts and slots were made in, where whole values go back. */
    private final Scope home;

    private ShardedWeights(Device device, Collectives world, Placement partsAt) {
        super(device);
        this.world = world;
        this.home = Scope.current();
        this.partsAt = java.util.Objects.requireNonNull(partsAt, "partsAt");
    }

    /**
     * Keeps this rank's part of each unit's frozen parameters (in the current scope), frees their whole values, and
     * allocates the two slots. The values must be contiguous on {@code device}, the same on every rank. Returns null
     * when no unit holds a frozen parameter (nothing to shard).
     */
    public static ShardedWeights shard(List<? extends Module> units, Collectives world, Device device) {
        return shard(units, world, device, List.of(), Placement.DEVICE);
    }

    /**
     * As above, and the units' trained parameters that {@code trained} holds (the optimizer's parts, already filled
     * from the whole values): their whole values are freed too (closed), and each run is gathered with its unit. The
     * frozen parts live at {@code partsAt}: the device, or {@link Placement#HOST_MAPPED} pinned host memory (ZeRO-3's
     * offload_param: each gather then reads its part through a device staging buffer, {@link
     * Collectives#allGatherStagedOverlapped}); trained runs stay the optimizer's, on the device. Returns null when there
     * is nothing to shard.
     */
    public static ShardedWeights shard(List<? extends Module> units, Collectives world, Device device, List<TrainedRun> trained,
                                       Placement partsAt) {
        if (units.isEmpty()) {
            throw new IllegalArgumentException("ShardedWeights: no units");
        }
        ShardedWeights w = new ShardedWeights(device, world, partsAt);
        try (Autograd.GradMode off = Autograd.noGrad()) {
            Map<Piece, Tensor> values = new java.util.IdentityHashMap<>();
            if (trained.stream().anyMatch(r -> r.unit() < 0 || r.unit() >= units.size())) {
                throw new IllegalArgumentException("ShardedWeights: a trained run of a unit outside 0.." + (units.size() - 1));
            }
            for (int i = 0; i < units.size(); i++) {
                int unit = i;
                w.units.add(w.layout(units.get(i), values, trained.stream().filter(r -> r.unit() == unit).toList()));
            }
            if (w.units.stream().allMatch(u -> u.entries().isEmpty())) {
                return null;
            }
            w.checkTheRanksAgree();
            for (int u = 0; u < w.units.size(); u++) {
                w.parts.add(w.keepPart(w.held.get(u), values));
            }
            w.allocateStaging();
            Backends.get(device).synchronize(); // the parts are written before the whole values' memory is reused
            for (Unit u : w.units) {
                for (Entry e : u.entries()) {
                    dropWholeValue(e.parameter());
                }
            }
            Backends.get(device).emptyCache();
        }
        w.allocateSlots(); // each unit's bytes already a multiple of the world's parts (layout)
        return w;
    }

    /**
     * Every rank must lay out the same units (their gathers are collectives of those sizes): each rank's count of units
     * and each unit's bytes per category, compared through one MAX all-reduce of the figures and their negations, so a
     * rank built with another model or quantization fails here with the figures, not in a gather of the wrong size.
     * The meta device has no values to compare (a planned world moves nothing).
     */
    private void checkTheRanksAgree() {
        if (device.kind() == Device.Kind.META) {
            return;
        }
        MemoryCategory[] categories = MemoryCategory.values();
        double[] mine = new double[1 + units.size() * categories.length];
        mine[0] = units.size();
        for (int u = 0; u < units.size(); u++) {
            for (int c = 0; c < categories.length; c++) {
                mine[1 + u * categories.length + c] = units.get(u).bytes().getOrDefault(categories[c], 0L);
            }
        }
        double[] both = new double[2 * mine.length];
        for (int i = 0; i < mine.length; i++) {
            both[i] = mine[i];
            both[mine.length + i] = -mine[i];
        }
        Tensor t = Tensor.fromArray(both, Shape.of(both.length), DType.F64, device);
        world.allReduce(t, Collectives.Reduction.MAX);
        double[] max = t.toDoubleArray();
        t.close();
        for (int i = 0; i < mine.length; i++) {
            if (max[i] != mine[i] || -max[mine.length + i] != mine[i]) {
                String what = i == 0 ? "units (layers)" : "bytes of unit " + (i - 1) / categories.length + "'s "
                        + categories[(i - 1) % categories.length].name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ');
                throw new CollectiveException("rank " + world.rank() + ": ZeRO stage 3: the ranks' models differ: " + what + " here "
                        + (long) mine[i] + ", between " + (long) -max[mine.length + i] + " and " + (long) max[i] + " over the ranks"
                        + " (every rank must load the same model, quantized alike)", null);
            }
        }
    }

    /** Bytes a unit's buffer of one category is rounded up to: the world's size times the alignment. */
    private long multiple() {
        return world.worldSize() * ALIGN;
    }

    /**
     * The unit's frozen parameters, each piece placed in its category's buffer (its whole value into {@code values}),
     * that buffer rounded up to the ranks' parts; then each trained run, in the WEIGHTS buffer after it, its parameters
     * at their places in the run.
     */
    private Unit layout(Module module, Map<Piece, Tensor> values, List<TrainedRun> runs) {
        List<Entry> entries = new ArrayList<>();
        Map<MemoryCategory, Long> bytes = new EnumMap<>(MemoryCategory.class);
        Map<Tensor, Parameter> trained = new java.util.IdentityHashMap<>();
        for (Map.Entry<String, Parameter> e : module.namedParameters().entrySet()) {
            Parameter p = e.getValue();
            if (!p.isSet() || p.isTrained()) {
                if (p.isSet()) {
                    trained.put(p.tensor(), p);
                }
                continue; // trained: the optimizer's runs, or whole
            }
            MemoryCategory category = categoryOf(p);
            List<Piece> pieces = new ArrayList<>();
            for (Tensor t : valueParts(p)) {
                if (!t.device().equals(device) || !t.isContiguous()) {
                    throw new IllegalArgumentException("ShardedWeights: parameter " + e.getKey() + " " + t.describe()
                            + " must be contiguous memory of " + device);
                }
                Piece piece = piece(bytes, category, t, null);
                values.put(piece, t);
                pieces.add(piece);
            }
            entries.add(new Entry(p, List.copyOf(pieces)));
        }
        bytes.replaceAll((c, b) -> Math.ceilDiv(b, multiple()) * multiple());
        Map<MemoryCategory, Long> frozenBytes = new EnumMap<>(bytes);
        List<Entry> frozen = List.copyOf(entries);
        List<PlacedRun> placed = new ArrayList<>();
        for (TrainedRun run : runs) {
            DType dtype = run.part().dtype();
            long at = place(bytes, MemoryCategory.WEIGHTS, dtype.bytesFor(run.part().numel() * world.worldSize()));
            placed.add(new PlacedRun(run, at));
            run.offsets().forEach((value, offset) -> {
                Parameter p = trained.get(value);
                if (p == null) {
                    throw new IllegalArgumentException("ShardedWeights: a trained run of unit " + run.unit() + " holds " + value.describe()
                            + ", which is no trained parameter of that unit");
                }
                if (value.dtype() != dtype || !value.device().equals(device)) {
                    throw new IllegalArgumentException("ShardedWeights: trained parameter " + value.describe() + " in a run of " + dtype
                            + " on " + device);
                }
                entries.add(new Entry(p, List.of(new Piece(value.shape(), dtype, MemoryCategory.WEIGHTS, at + dtype.bytesFor(offset), null))));
            });
        }
        held.add(new Held(frozen, frozenBytes, List.copyOf(placed)));
        return new Unit(List.copyOf(entries), bytes);
    }

    /**
     * This rank's part of each of the unit's frozen category buffers, at {@link #partsAt}: the bytes of the pieces that
     * fall in it (gaps zero).
     */
    private Map<MemoryCategory, Tensor> keepPart(Held u, Map<Piece, Tensor> values) {
        Map<MemoryCategory, Tensor> mine = new EnumMap<>(MemoryCategory.class);
        u.frozenBytes().forEach((c, bytes) -> {
            try (Scope.Entered in = Scope.countAs(c)) {
                mine.put(c, Tensor.zeros(Shape.of(bytes / world.worldSize()), DType.U8, device, partsAt));
            }
        });
        for (Entry e : u.frozen()) {
            for (Piece p : e.pieces()) {
                Tensor part = mine.get(p.category());
                long size = part.numel();
                long lo = Math.max(p.offset(), world.rank() * size);
                long hi = Math.min(p.offset() + p.bytes(), (world.rank() + 1) * size);
                if (lo < hi) {
                    Ops.copyInto(bytesOf(values.get(p)).slice(0, lo - p.offset(), hi - p.offset()), part.slice(0, lo - world.rank() * size, hi - world.rank() * size));
                }
            }
        }
        return mine;
    }

    /** With the parts in host memory, the device staging per category: the largest part's bytes. */
    private void allocateStaging() {
        if (partsAt == Placement.DEVICE) {
            return;
        }
        Map<MemoryCategory, Long> largest = new EnumMap<>(MemoryCategory.class);
        for (Map<MemoryCategory, Tensor> m : parts) {
            m.forEach((c, t) -> largest.merge(c, t.numel(), Math::max));
        }
        largest.forEach((c, bytes) -> {
            try (Scope.Entered in = Scope.countAs(c)) {
                staging.put(c, Tensor.empty(Shape.of(bytes), DType.U8, device));
            }
        });
    }

    /** A contiguous tensor's bytes as a flat U8 view. */
    private static Tensor bytesOf(Tensor t) {
        long bytes = t.dtype().bytesFor(t.numel());
        return Tensor.view(TensorInternals.storage(t), Shape.of(bytes), new long[] {1}, t.dtype().bytesFor(t.offset()), DType.U8);
    }

    /**
     * Frees the parameter's whole value: a frozen one's is replaced by a meta-device placeholder of its shape and dtype;
     * a trained one's stays the leaf its gradients reach, closed.
     */
    private static void dropWholeValue(Parameter p) {
        if (p.isTrained()) {
            p.tensor().close();
        } else if (p.isQuantized()) {
            Nf4Tensor q = p.quantized();
            p.set(q.withParts(java.util.Arrays.stream(q.parts()).map(ShardedWeights::placeholder).toArray(Tensor[]::new)));
            q.close();
        } else {
            Tensor t = p.tensor();
            p.set(placeholder(t));
            t.close();
        }
    }

    /** A meta-device tensor of t's shape and dtype over storage that holds nothing ({@link MetaBackend#placeholder}). */
    private static Tensor placeholder(Tensor t) {
        return Tensor.view(MetaBackend.placeholder(t.dtype().bytesFor(t.numel()), MemoryCategory.WEIGHTS), t.shape(), t.dtype());
    }

    /**
     * All-gathers the unit's parts into slot s beside the computation ({@link Collectives#allGatherOverlapped}: behind
     * the work queued so far, which may still read the slot's last unit), so the next layer arrives while this one runs.
     */
    @Override
    protected void fetch(int unit, int slot) {
        parts.get(unit).forEach((c, part) -> {
            Tensor out = slot(slot, c).slice(0, 0, part.numel() * world.worldSize());
            pending.add(staging.isEmpty() ? world.allGatherOverlapped(part, out)
                    : world.allGatherStagedOverlapped(part, staging.get(c).slice(0, 0, part.numel()), out));
        });
        for (PlacedRun r : held.get(unit).runs()) {
            pending.add(world.allGatherOverlapped(r.run().part(), runView(slot, r)));
        }
    }

    /** A trained run's place in slot s: its elements, in its dtype. */
    private Tensor runView(int s, PlacedRun r) {
        DType dtype = r.run().part().dtype();
        return Tensor.view(TensorInternals.storage(slot(s, MemoryCategory.WEIGHTS)), Shape.of(r.elements(world.worldSize())), new long[] {1},
                r.slotOffset() / dtype.bytesFor(1), dtype);
    }

    /** The computation queued from now on waits for the gathers queued so far. */
    @Override
    protected void ready() {
        pending.forEach(Collectives.Overlap::await);
        pending.clear();
    }

    /**
     * Gives every sharded parameter its whole value again on the device (in the scope the store was made in), unit by
     * unit through a slot, and closes the store; the parts stay with that scope. A trained parameter gets a new leaf
     * (requiring grad): the optimizer whose parts these were holds the old one, so training through it ends here (a
     * model used after its stage 3 run, generation say). A collective: every rank calls it.
     */
    public void gatherWhole() {
        checkOpen();
        markClosed();
        try (Autograd.GradMode off = Autograd.noGrad(); Scope.Entered in = home.enter()) {
            for (int u = 0; u < units.size(); u++) {
                fetch(u, 0);
                ready();
                for (Entry e : units.get(u).entries()) {
                    Tensor[] whole = copiesOf(e, device);
                    Parameter param = e.parameter();
                    if (param.isQuantized()) {
                        param.set(param.quantized().withParts(whole));
                    } else {
                        param.set(whole[0].requiresGrad(param.isTrained()));
                    }
                }
            }
        }
    }

    /** This rank's bytes of the sharded weights, per category (its parts: the frozen ones and the trained runs'). */
    public Map<MemoryCategory, Long> partBytes() {
        Map<MemoryCategory, Long> out = new EnumMap<>(MemoryCategory.class);
        for (Map<MemoryCategory, Tensor> m : parts) {
            m.forEach((c, t) -> out.merge(c, t.numel(), Long::sum));
        }
        for (Held h : held) {
            for (PlacedRun r : h.runs()) {
                out.merge(MemoryCategory.WEIGHTS, r.run().part().dtype().bytesFor(r.run().part().numel()), Long::sum);
            }
        }
        return out;
    }

    /** Where this rank's frozen parts live: the device, or pinned host memory (beside weight offload). */
    public Placement partsAt() {
        return partsAt;
    }

    /**
     * Runs {@code action} with every sharded parameter's value whole in host memory (cpu tensors of a scope that ends
     * with it), as a save or a restore needs them: the units gathered one by one through a slot and copied out. What
     * the action writes into trained values is then taken back into this rank's parts (a restore); frozen values are
     * read only. The parameters get their placeholders back after, and every unit is gathered again when next
     * acquired. A collective: every rank calls it.
     */
    public void withWholeValues(Runnable action) {
        checkOpen();
        invalidate(); // the slots are overwritten here
        Map<Parameter, Object> before = new java.util.IdentityHashMap<>();
        Map<Tensor, Tensor> trainedWhole = new java.util.IdentityHashMap<>(); // a trained leaf's whole value
        try (Scope lent = Scope.open("whole weights", MemoryCategory.WEIGHTS)) {
            try {
                try (Autograd.GradMode off = Autograd.noGrad()) {
                    for (int u = 0; u < units.size(); u++) {
                        fetch(u, 0);
                        ready();
                        for (Entry e : units.get(u).entries()) {
                            lendWhole(e, before, trainedWhole);
                        }
                    }
                }
                action.run();
                try (Autograd.GradMode off = Autograd.noGrad()) {
                    takeBackTrained(trainedWhole);
                }
            } finally { // the placeholders back, whatever failed (a read then fails loudly, not on a freed copy)
                before.forEach((p, value) -> {
                    if (value instanceof Nf4Tensor q) {
                        p.set(q);
                    } else {
                        p.set((Tensor) value);
                    }
                });
            }
        }
    }

    /**
     * Entry e's whole value copied out of slot 0 into host memory and set as its parameter's value; its placeholder kept
     * in {@code before}, a trained one's copy by its leaf in {@code trainedWhole}.
     */
    private void lendWhole(Entry e, Map<Parameter, Object> before, Map<Tensor, Tensor> trainedWhole) {
        Parameter p = e.parameter();
        Tensor[] whole = copiesOf(e, Device.CPU);
        if (p.isQuantized()) {
            before.put(p, p.quantized());
            p.set(p.quantized().withParts(whole));
        } else {
            before.put(p, p.tensor());
            if (p.isTrained()) {
                trainedWhole.put(p.tensor(), whole[0]);
            }
            p.set(whole[0]);
        }
    }

    /** Entry e's pieces copied out of slot 0 into new tensors on {@code target} (in the current scope, each counted as its category). */
    private Tensor[] copiesOf(Entry e, Device target) {
        Tensor[] out = new Tensor[e.pieces().size()];
        for (int i = 0; i < out.length; i++) {
            Piece p = e.pieces().get(i);
            Tensor inSlot = view(0, p);
            try (Scope.Entered c = Scope.countAs(p.category())) {
                out[i] = inSlot.device().equals(target) ? inSlot.copy() : inSlot.to(target);
            }
        }
        return out;
    }

    /** This rank's part of each trained run, from its parameters' whole values (by leaf). */
    private void takeBackTrained(Map<Tensor, Tensor> wholeByLeaf) {
        long rank = world.rank();
        for (Held h : held) {
            for (PlacedRun r : h.runs()) {
                Tensor part = r.run().part();
                long lo = rank * part.numel();
                long hi = lo + part.numel();
                r.run().offsets().forEach((leaf, offset) -> {
                    Tensor value = wholeByLeaf.get(leaf);
                    long a = Math.max(lo, offset);
                    long b = Math.min(hi, offset + value.numel());
                    if (a < b) {
                        Ops.copyInto(value.reshape(value.numel()).slice(0, a - offset, b - offset).to(part.device()), part.slice(0, a - lo, b - lo));
                    }
                });
            }
        }
    }

    /** Stops acquiring; the parameters keep their placeholders (the model cannot run until {@link #gatherWhole}). */
    @Override
    public void close() {
        markClosed();
    }
}
