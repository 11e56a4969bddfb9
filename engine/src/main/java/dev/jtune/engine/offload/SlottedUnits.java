package dev.jtune.engine.offload;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.nn.Parameter;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * A store of a model's units' weights (its decoder layers) kept off the device's whole copies, each unit brought into
 * one of two device slots when computation reaches it ({@link UnitSlots}): pinned host memory ({@link HostWeights},
 * weight offload) or the ranks' shards ({@code dist.ShardedWeights}, ZeRO stage 3). A slot is one U8 device buffer per
 * memory category; a unit's pieces (a dense value, or an NF4 weight's codes and scales) lie in it at aligned offsets,
 * and staging points each parameter at views of them ({@link Parameter#stage}: a trained value's reads carry
 * gradients to it). Subclasses say how a unit is fetched. Staged copies must not outlive their residence, so the
 * model recomputes units in backward (gradient checkpointing). Used from the training thread only.
 */
public abstract class SlottedUnits implements AutoCloseable {
    /** Bytes each piece's place in a slot is aligned to (a 16-byte vector access needs 16; kernels like 256). */
    public static final long ALIGN = 256;

    /**
     * One tensor of a parameter and its place in its unit's slot; {@code home} is where the store keeps it whole
     * (host memory), or null where no rank holds it whole (shards).
     */
    protected record Piece(Shape shape, DType dtype, MemoryCategory category, long offset, Tensor home) {
        public Piece {
        }

        /** The piece's bytes (its place in the slot may be followed by alignment padding). */
        public long bytes() {
            return dtype.bytesFor(shape.numel());
        }
    }

    /** A parameter of a unit and the pieces it is fetched as (an NF4 value's parts in order). */
    protected record Entry(Parameter parameter, List<Piece> pieces) {
        public Entry {
        }
    }

    /** One unit: its parameters and the bytes its slot needs per category (each a multiple of {@link #ALIGN}). */
    protected record Unit(List<Entry> entries, Map<MemoryCategory, Long> bytes) {
        public Unit {
        }
    }

    protected final Device device;
    protected final List<Unit> units = new ArrayList<>();
    /** Two slots, each one U8 device buffer per category. */
    private final List<Map<MemoryCategory, Tensor>> slots = new ArrayList<>();
    private UnitSlots residency;
    private boolean closed;

    protected SlottedUnits(Device device) {
        this.device = device;
    }

    /** The next aligned offset of a piece of {@code bytes} in its category's slot buffer, growing the unit's bytes. */
    protected static long place(Map<MemoryCategory, Long> unitBytes, MemoryCategory category, long bytes) {
        long at = unitBytes.getOrDefault(category, 0L);
        unitBytes.put(category, Math.ceilDiv(at + bytes, ALIGN) * ALIGN);
        return at;
    }

    /** The tensors a parameter's value is stored in: a dense value, or an NF4 value's parts in order. */
    protected static Tensor[] valueParts(Parameter p) {
        return p.isQuantized() ? p.quantized().parts() : new Tensor[] {p.tensor()};
    }

    /** The memory category of a parameter's pieces: QUANTIZED_WEIGHTS for an NF4 value, else WEIGHTS. */
    protected static MemoryCategory categoryOf(Parameter p) {
        return p.isQuantized() ? MemoryCategory.QUANTIZED_WEIGHTS : MemoryCategory.WEIGHTS;
    }

    /** A piece of {@code t}'s shape and dtype placed next in its category's buffer ({@link #place}), kept at {@code home}. */
    protected static Piece piece(Map<MemoryCategory, Long> unitBytes, MemoryCategory category, Tensor t, Tensor home) {
        return new Piece(t.shape(), t.dtype(), category, place(unitBytes, category, t.dtype().bytesFor(t.numel())), home);
    }

    /**
     * The two slots, each the largest unit's bytes per category, in the current scope (each buffer counted as its
     * category); from then on units can be acquired.
     */
    protected final void allocateSlots() {
        if (units.isEmpty()) {
            throw new IllegalArgumentException(getClass().getSimpleName() + ": no units");
        }
        Map<MemoryCategory, Long> largest = new EnumMap<>(MemoryCategory.class);
        for (Unit u : units) {
            u.bytes().forEach((c, bytes) -> largest.merge(c, bytes, Math::max));
        }
        for (int s = 0; s < 2; s++) {
            Map<MemoryCategory, Tensor> slot = new EnumMap<>(MemoryCategory.class);
            largest.forEach((c, bytes) -> {
                try (Scope.Entered in = Scope.countAs(c)) {
                    slot.put(c, Tensor.empty(Shape.of(bytes), DType.U8, device));
                }
            });
            slots.add(slot);
        }
        residency = new UnitSlots(units.size(), new UnitSlots.Source() {
            @Override
            public void fetch(int unit, int slot) {
                SlottedUnits.this.fetch(unit, slot);
            }

            @Override
            public void ready() {
                SlottedUnits.this.ready();
            }

            @Override
            public void stage(int unit, int slot) {
                SlottedUnits.this.stage(units.get(unit), slot);
            }

            @Override
            public void unstage(int unit) {
                unstageAll(units.get(unit));
            }
        });
    }

    /** Queues unit {@code unit}'s bytes into slot {@code slot}, after the device work queued so far (which may read the slot). */
    protected abstract void fetch(int unit, int slot);

    /** Makes the device work queued from now on wait for the fetches queued so far. */
    protected abstract void ready();

    /** Slot {@code s}'s buffer of {@code category}. */
    protected final Tensor slot(int s, MemoryCategory category) {
        return slots.get(s).get(category);
    }

    /** The piece's place in slot {@code s}, of the piece's shape and dtype. */
    protected final Tensor view(int s, Piece p) {
        return view(s, p, p.shape());
    }

    /** The piece's place in slot {@code s} as {@code shape} (of the piece's elements: flat, for a copy), in its dtype. */
    protected final Tensor view(int s, Piece p, Shape shape) {
        long elementOffset = p.offset() / p.dtype().bytesFor(1);
        return Tensor.view(TensorInternals.storage(slot(s, p.category())), shape, shape.contiguousStrides(), elementOffset, p.dtype());
    }

    private void stage(Unit u, int s) {
        for (Entry e : u.entries()) {
            Parameter p = e.parameter();
            Tensor[] staged = e.pieces().stream().map(piece -> view(s, piece)).toArray(Tensor[]::new);
            if (p.isQuantized()) {
                p.stage(p.quantized().withParts(staged));
            } else {
                p.stage(staged[0]); // a trained value's reads carry gradients to it (Parameter.value)
            }
        }
    }

    private static void unstageAll(Unit u) {
        for (Entry e : u.entries()) {
            e.parameter().unstage();
        }
    }

    // ---------------------------------------------------------------- computation

    /**
     * Makes unit {@code index}'s parameters readable by device work queued from now on (staged to its slot, fetched
     * there first when no slot holds it) and fetches the unit expected next. Call before every forward or
     * recomputation of the unit.
     */
    public final void acquire(int index) {
        checkOpen();
        residency.acquire(index);
    }

    /**
     * The values changed (an optimizer step): every unit is fetched again when next acquired. A fetch in flight
     * still lands; its slot is simply refilled.
     */
    public final void invalidate() {
        checkOpen();
        residency.invalidate();
    }

    // ---------------------------------------------------------------- figures

    /** The units held. */
    public final int units() {
        return units.size();
    }

    /** Device bytes of one slot (the largest unit's), per category; the device holds two. */
    public final Map<MemoryCategory, Long> slotBytes() {
        Map<MemoryCategory, Long> out = new EnumMap<>(MemoryCategory.class);
        slots.getFirst().forEach((c, t) -> out.put(c, t.dtype().bytesFor(t.numel())));
        return out;
    }

    /** Whether a unit holds a parameter that requires grad (a trained weight, whose value the optimizer changes). */
    public final boolean holdsTrainedParameters() {
        for (Unit u : units) {
            for (Entry e : u.entries()) {
                if (e.parameter().isTrained()) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Units fetched into a slot so far (a measure of how well the guesses went). */
    public final long copies() {
        return residency == null ? 0 : residency.fetches();
    }

    public final boolean isClosed() {
        return closed;
    }

    protected final void checkOpen() {
        if (closed) {
            throw new IllegalStateException(getClass().getSimpleName() + ": closed");
        }
    }

    /** Stops acquiring (what else closing does is the store's own); no checked exception. */
    @Override
    public abstract void close();

    /** Marks the store closed and unstages the unit staged last; whether it was open already. */
    protected final boolean markClosed() {
        if (closed) {
            return false;
        }
        closed = true;
        if (residency != null) {
            residency.release(); // computation reads the values again
        }
        return true;
    }
}
