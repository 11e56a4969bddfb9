package dev.jtune.engine.dist;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
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
 * ZeRO stage 3's weights, for the frozen parameters of a model's units (its decoder layers: QLoRA's NF4 base, frozen
 * dense weights and norms): each rank keeps one equal part of every unit's bytes, and a unit is all-gathered into one
 * of two device slots when computation reaches it, the next one fetched as the previous is staged ({@link
 * SlottedUnits}). A unit's pieces lie in its slot as they would in one buffer per category (aligned, as {@link
 * SlottedUnits#ALIGN}); that buffer, rounded up to the world's size times the alignment, is cut into the ranks' parts,
 * so the gather writes the slot in place. Trained parameters (adapters, a full fine-tune's weights) stay whole: their
 * gradients and optimizer state are what stages 1-2 shard. A sharded parameter's value is a placeholder of its shape
 * and dtype on the meta device (nothing to read: a forward outside {@link #acquire} fails loudly instead of reading
 * stale bytes); {@link #gatherWhole} makes the values whole again (a collective: every rank calls it). Every rank
 * shards the same units in the same order, then acquires them in the same order (the gathers are collectives).
 */
public final class ShardedWeights extends SlottedUnits {
    private final Collectives world;
    /** Per unit, this rank's part of each category's bytes (U8, the unit's rounded bytes / world). */
    private final List<Map<MemoryCategory, Tensor>> parts = new ArrayList<>();
    /** Gathers queued beside the computation and not yet joined. */
    private final List<Collectives.Overlap> pending = new ArrayList<>();
    /** The scope the parts and slots were made in, where whole values go back. */
    private final Scope home;

    private ShardedWeights(Device device, Collectives world) {
        super(device);
        this.world = world;
        this.home = Scope.current();
    }

    /**
     * Keeps this rank's part of each unit's frozen parameters (in the current scope), frees their whole values, and
     * allocates the two slots. The values must be contiguous on {@code device}, the same on every rank. Returns null
     * when no unit holds a frozen parameter (nothing to shard).
     */
    public static ShardedWeights shard(List<? extends Module> units, Collectives world, Device device) {
        if (units.isEmpty()) {
            throw new IllegalArgumentException("ShardedWeights: no units");
        }
        ShardedWeights w = new ShardedWeights(device, world);
        try (Autograd.GradMode off = Autograd.noGrad()) {
            Map<Piece, Tensor> values = new java.util.IdentityHashMap<>();
            for (Module m : units) {
                w.units.add(w.layout(m, values));
            }
            if (w.units.stream().allMatch(u -> u.entries().isEmpty())) {
                return null;
            }
            w.checkTheRanksAgree();
            for (Unit u : w.units) {
                w.parts.add(w.keepPart(u, values));
            }
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

    /** The unit's frozen parameters, each piece placed in its category's buffer (its whole value into {@code values}). */
    private Unit layout(Module module, Map<Piece, Tensor> values) {
        List<Entry> entries = new ArrayList<>();
        Map<MemoryCategory, Long> bytes = new EnumMap<>(MemoryCategory.class);
        for (Map.Entry<String, Parameter> e : module.namedParameters().entrySet()) {
            Parameter p = e.getValue();
            if (!p.isSet() || !p.isQuantized() && p.tensor().requiresGrad()) {
                continue; // trained: stays whole
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
        return new Unit(List.copyOf(entries), bytes);
    }

    /** This rank's part of each of the unit's category buffers: the bytes of the pieces that fall in it (gaps zero). */
    private Map<MemoryCategory, Tensor> keepPart(Unit u, Map<Piece, Tensor> values) {
        Map<MemoryCategory, Tensor> mine = new EnumMap<>(MemoryCategory.class);
        u.bytes().forEach((c, bytes) -> {
            try (Scope.Entered in = Scope.countAs(c)) {
                mine.put(c, Tensor.zeros(Shape.of(bytes / world.worldSize()), DType.U8, device));
            }
        });
        for (Entry e : u.entries()) {
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

    /** A contiguous tensor's bytes as a flat U8 view. */
    private static Tensor bytesOf(Tensor t) {
        long bytes = t.dtype().bytesFor(t.numel());
        return Tensor.view(TensorInternals.storage(t), Shape.of(bytes), new long[] {1}, t.dtype().bytesFor(t.offset()), DType.U8);
    }

    /** Frees the parameter's whole value, leaving a meta-device placeholder of its shape and dtype. */
    private static void dropWholeValue(Parameter p) {
        if (p.isQuantized()) {
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
            long bytes = part.numel() * world.worldSize();
            pending.add(world.allGatherOverlapped(part, slot(slot, c).slice(0, 0, bytes)));
        });
    }

    /** The computation queued from now on waits for the gathers queued so far. */
    @Override
    protected void ready() {
        pending.forEach(Collectives.Overlap::await);
        pending.clear();
    }

    /**
     * Gives every sharded parameter its whole value again (in the scope the store was made in), unit by unit through a
     * slot, and closes the store; the parts stay with that scope. A collective: every rank calls it.
     */
    public void gatherWhole() {
        checkOpen();
        markClosed();
        try (Autograd.GradMode off = Autograd.noGrad(); Scope.Entered in = home.enter()) {
            for (int u = 0; u < units.size(); u++) {
                fetch(u, 0);
                ready();
                for (Entry e : units.get(u).entries()) {
                    Tensor[] whole = new Tensor[e.pieces().size()];
                    for (int i = 0; i < whole.length; i++) {
                        Piece p = e.pieces().get(i);
                        try (Scope.Entered c = Scope.countAs(p.category())) {
                            whole[i] = Tensor.empty(p.shape(), p.dtype(), device);
                        }
                        Ops.copyInto(view(0, p), whole[i]);
                    }
                    Parameter param = e.parameter();
                    if (param.isQuantized()) {
                        param.set(param.quantized().withParts(whole));
                    } else {
                        param.set(whole[0]);
                    }
                }
            }
        }
    }

    /** This rank's bytes of the sharded weights, per category (its parts). */
    public Map<MemoryCategory, Long> partBytes() {
        Map<MemoryCategory, Long> out = new EnumMap<>(MemoryCategory.class);
        for (Map<MemoryCategory, Tensor> m : parts) {
            m.forEach((c, t) -> out.merge(c, t.numel(), Long::sum));
        }
        return out;
    }

    /** Stops acquiring; the parameters keep their placeholders (the model cannot run until {@link #gatherWhole}). */
    @Override
    public void close() {
        markClosed();
    }
}
