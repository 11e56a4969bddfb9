package dev.jtune.engine.offload;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.optim.host.Transfers;
import dev.jtune.engine.quant.Nf4Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Weight offload (ZeRO-3 parameter offload on one device, {@code --offload_param cpu}): the parameters of a model's
 * units (its decoder layers), bf16 or NF4, live in pinned host memory ({@link Placement#HOST_MAPPED}, counted as host
 * WEIGHTS or QUANTIZED_WEIGHTS), and a unit is copied into one of two device slots when computation reaches it. The
 * model calls {@link #acquire(int)} before a unit's forward, its recomputation and so its backward; that stages the
 * unit's parameters to views of its slot ({@link Parameter#stage}) and queues the copy of the unit expected next into
 * the other slot on a copy stream, after the device work that last read that slot. The next unit is guessed from the
 * direction of travel: up in forward, down in backward, turning at either end (so the turn costs no copy: the unit
 * needed next is still in the other slot). A wrong guess only costs a wait. The device holds two units.
 * <p>
 * Staged copies must not outlive their residence: the model must recompute units in backward (gradient
 * checkpointing), since a saved view of a slot would be overwritten by a later unit. Each read of a trained parameter's
 * staged copy ({@link Parameter#value()}) is connected to the host value by an identity autograd node, so gradients reach the value (a
 * {@link dev.jtune.engine.Autograd.GradientSink}, the host optimizer's, takes them); whoever changes the host values
 * (the optimizer's step) calls {@link #invalidate()} so units are copied again. Used from the training thread only;
 * {@link #close()} releases the copy streams (the memory belongs to the scope current at construction).
 */
public final class HostWeights implements AutoCloseable {
    /** Bytes each piece's place in a slot is aligned to (a 16-byte vector access needs 16; kernels like 256). */
    static final long ALIGN = 256;

    /** One tensor of a parameter (a dense value, or an NF4 weight's codes or scales) and its place in its unit's slot. */
    private record Piece(Tensor host, MemoryCategory category, long offset) {
    }

    /** A parameter of a unit and the pieces it is copied as. */
    private record Entry(Parameter parameter, List<Piece> pieces) {
    }

    /** One unit (a layer): its parameters and the bytes its slot needs per category. */
    private record Unit(List<Entry> entries, Map<MemoryCategory, Long> bytes) {
    }

    private final Device device;
    private final List<Unit> units = new ArrayList<>();
    /** Two slots, each one U8 device buffer per category. */
    private final List<Map<MemoryCategory, Tensor>> slots = new ArrayList<>();
    /** The unit each slot holds (or is being copied into), -1 for none. */
    private final int[] holds = {-1, -1};
    private final Transfers transfers;
    /** The unit staged last, and the direction of travel (+1 forward, -1 backward). */
    private int last = -1;
    private int direction = 1;
    private long copies;
    private boolean closed;

    private HostWeights(Device device) {
        this.device = device;
        this.transfers = Transfers.of(device);
    }

    /**
     * Moves the parameters of each unit (in order: the order computation visits them) to pinned host memory of
     * {@code device}, freeing their device memory, and allocates the two slots, in the current scope. Parameters keep
     * their requires-grad flag. The units must hold every value on {@code device}, dense or NF4.
     */
    public static HostWeights offload(List<? extends Module> modules, Device device) {
        if (modules.isEmpty()) {
            throw new IllegalArgumentException("HostWeights: no units to offload");
        }
        Builder b = builder(device);
        modules.forEach(b::add);
        return b.build();
    }

    /**
     * Offload unit by unit, as a model loads: each {@link Builder#add} moves a unit to the host at once (so a model
     * larger than the device can load one unit at a time), {@link Builder#build} allocates the slots.
     */
    public static Builder builder(Device device) {
        return new Builder(device);
    }

    /** Units added in the order computation visits them. */
    public static final class Builder {
        private final HostWeights weights;
        private boolean built;

        private Builder(Device device) {
            this.weights = new HostWeights(device);
        }

        /** Moves {@code unit}'s parameters to pinned host memory now (in the current scope), freeing their device memory. */
        public Builder add(Module unit) {
            if (built) {
                throw new IllegalStateException("HostWeights.Builder: already built");
            }
            try (Autograd.GradMode off = Autograd.noGrad()) {
                weights.units.add(weights.moveToHost(unit));
                var backend = dev.jtune.engine.backend.Backends.get(weights.device);
                backend.synchronize(); // the host copies are written before the device memory is reused
                backend.emptyCache(); // the freed weights' blocks go back to the device, not held as reserved cache
            }
            return this;
        }

        /** The two slots, each the largest unit's bytes per category, in the current scope. */
        public HostWeights build() {
            if (weights.units.isEmpty()) {
                throw new IllegalArgumentException("HostWeights: no units to offload");
            }
            built = true;
            Map<MemoryCategory, Long> largest = new EnumMap<>(MemoryCategory.class);
            for (Unit u : weights.units) {
                u.bytes().forEach((c, bytes) -> largest.merge(c, bytes, Math::max));
            }
            for (int s = 0; s < 2; s++) {
                Map<MemoryCategory, Tensor> slot = new EnumMap<>(MemoryCategory.class);
                largest.forEach((c, bytes) -> {
                    try (Scope.Entered in = Scope.countAs(c)) {
                        slot.put(c, Tensor.empty(Shape.of(bytes), DType.U8, weights.device));
                    }
                });
                weights.slots.add(slot);
            }
            return weights;
        }
    }

    private Unit moveToHost(Module module) {
        List<Entry> entries = new ArrayList<>();
        Map<MemoryCategory, Long> bytes = new EnumMap<>(MemoryCategory.class);
        for (Map.Entry<String, Parameter> e : module.namedParameters().entrySet()) {
            Parameter p = e.getValue();
            List<Piece> pieces = new ArrayList<>();
            if (p.isQuantized()) {
                Nf4Tensor q = p.quantized();
                Tensor[] parts = q.parts();
                for (int i = 0; i < parts.length; i++) {
                    parts[i] = toHost(parts[i], MemoryCategory.QUANTIZED_WEIGHTS, e.getKey());
                    pieces.add(new Piece(parts[i], MemoryCategory.QUANTIZED_WEIGHTS, place(bytes, MemoryCategory.QUANTIZED_WEIGHTS, parts[i])));
                }
                p.set(q.withParts(parts));
                q.close();
            } else {
                Tensor t = p.tensor();
                Tensor host = toHost(t, MemoryCategory.WEIGHTS, e.getKey()).requiresGrad(t.requiresGrad());
                pieces.add(new Piece(host, MemoryCategory.WEIGHTS, place(bytes, MemoryCategory.WEIGHTS, host)));
                p.set(host);
                t.close();
            }
            entries.add(new Entry(p, List.copyOf(pieces)));
        }
        return new Unit(List.copyOf(entries), bytes);
    }

    private Tensor toHost(Tensor t, MemoryCategory category, String name) {
        if (!t.device().equals(device) || t.placement() != Placement.DEVICE || !t.isContiguous()) {
            throw new IllegalArgumentException("HostWeights: parameter " + name + " " + t.describe()
                    + " must be contiguous device memory of " + device);
        }
        Tensor host;
        try (Scope.Entered c = Scope.countAs(category)) {
            host = Tensor.empty(t.shape(), t.dtype(), device, Placement.HOST_MAPPED);
        }
        Ops.copyInto(t, host);
        return host;
    }

    /** The next aligned offset of a piece in its category's slot buffer. */
    private static long place(Map<MemoryCategory, Long> bytes, MemoryCategory category, Tensor piece) {
        long at = bytes.getOrDefault(category, 0L);
        bytes.put(category, Math.ceilDiv(at + piece.dtype().bytesFor(piece.numel()), ALIGN) * ALIGN);
        return at;
    }

    // ---------------------------------------------------------------- computation

    /**
     * Makes unit {@code index}'s parameters readable by device work queued from now on (staged to its slot, copied
     * there first when it is not) and queues the copy of the unit expected next. Call before every forward or
     * recomputation of the unit.
     */
    public void acquire(int index) {
        checkOpen();
        if (index < 0 || index >= units.size()) {
            throw new IndexOutOfBoundsException("HostWeights: unit " + index + " of " + units.size());
        }
        int slot = slotOf(index);
        if (slot < 0) {
            slot = last >= 0 ? 1 - slotOf(last) : 0; // not the slot of the unit staged last, which may still be in use
            fetch(index, slot);
        }
        transfers.computeAfterCopies(); // its copy (queued now or at the last acquire) lands before the unit runs
        if (last >= 0 && last != index) {
            unstage(units.get(last));
            direction = index > last ? 1 : -1;
        }
        stage(units.get(index), slot);
        last = index;
        int next = index + direction;
        if (next < 0 || next >= units.size()) {
            next = index - direction; // the turn: backward follows forward's last unit, the next forward backward's first
        }
        if (next >= 0 && next < units.size() && slotOf(next) < 0) {
            fetch(next, 1 - slot);
        }
    }

    /**
     * The host values changed (an optimizer step): every unit is copied again when next acquired. A copy in flight
     * still lands; its slot is simply refilled.
     */
    public void invalidate() {
        checkOpen();
        Arrays.fill(holds, -1);
        if (last >= 0) {
            unstage(units.get(last));
        }
        last = -1;
        direction = 1;
    }

    private int slotOf(int unit) {
        return holds[0] == unit ? 0 : holds[1] == unit ? 1 : -1;
    }

    /** Queues unit u's pieces into slot s, after the device work queued so far (which may read the slot's last unit). */
    private void fetch(int u, int s) {
        if (holds[s] >= 0 && holds[s] == last) {
            unstage(units.get(last));
            last = -1;
        }
        transfers.afterCompute();
        for (Entry e : units.get(u).entries()) {
            for (Piece p : e.pieces()) {
                transfers.toDevice(p.host().reshape(p.host().numel()), slotView(s, p, Shape.of(p.host().numel())));
            }
        }
        holds[s] = u;
        copies++;
    }

    private Tensor slotView(int s, Piece p, Shape shape) {
        Tensor buffer = slots.get(s).get(p.category());
        DType dtype = p.host().dtype();
        long elementOffset = p.offset() / dtype.bytesFor(1);
        return Tensor.view(TensorInternals.storage(buffer), shape, shape.contiguousStrides(), elementOffset, dtype);
    }

    private void stage(Unit u, int s) {
        for (Entry e : u.entries()) {
            Parameter p = e.parameter();
            Tensor[] staged = e.pieces().stream().map(piece -> slotView(s, piece, piece.host().shape())).toArray(Tensor[]::new);
            if (p.isQuantized()) {
                p.stage(p.quantized().withParts(staged));
            } else {
                p.stage(staged[0]); // a trained value's reads carry gradients to it (Parameter.value)
            }
        }
    }

    private static void unstage(Unit u) {
        for (Entry e : u.entries()) {
            e.parameter().unstage();
        }
    }

    // ---------------------------------------------------------------- figures

    /** The units offloaded. */
    public int units() {
        return units.size();
    }

    /** Device bytes of one slot (the largest unit's), per category; the device holds two. */
    public Map<MemoryCategory, Long> slotBytes() {
        Map<MemoryCategory, Long> out = new EnumMap<>(MemoryCategory.class);
        slots.getFirst().forEach((c, t) -> out.put(c, t.dtype().bytesFor(t.numel())));
        return out;
    }

    /** Whether a unit holds a parameter that requires grad (a trained weight, whose host value the optimizer changes). */
    public boolean holdsTrainedParameters() {
        for (Unit u : units) {
            for (Entry e : u.entries()) {
                if (!e.parameter().isQuantized() && e.parameter().tensor().requiresGrad()) {
                    return true;
                }
            }
        }
        return false;
    }

    public boolean isClosed() {
        return closed;
    }

    /** Units copied to the device so far (a measure of how well the guesses went). */
    public long copies() {
        return copies;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("HostWeights: closed");
        }
    }

    /**
     * Waits for the copies in flight and releases the copy streams; the parameters keep their host values, which
     * computation then reads in place (over the bus; the owner stops calling {@link #acquire}).
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (last >= 0) {
            unstage(units.get(last));
        }
        transfers.close();
    }
}
