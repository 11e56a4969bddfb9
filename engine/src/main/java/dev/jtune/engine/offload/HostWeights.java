package dev.jtune.engine.offload;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.optim.host.Transfers;
import dev.jtune.engine.quant.Nf4Tensor;

import java.util.ArrayList;
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
public final class HostWeights extends SlottedUnits {
    private final Transfers transfers;

    private HostWeights(Device device) {
        super(device);
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
            weights.allocateSlots();
            return weights;
        }
    }

    private Unit moveToHost(Module module) {
        List<Entry> entries = new ArrayList<>();
        Map<MemoryCategory, Long> bytes = new EnumMap<>(MemoryCategory.class);
        for (Map.Entry<String, Parameter> e : module.namedParameters().entrySet()) {
            Parameter p = e.getValue();
            List<Piece> pieces = new ArrayList<>();
            MemoryCategory category = categoryOf(p);
            if (p.isQuantized()) {
                Nf4Tensor q = p.quantized();
                Tensor[] parts = q.parts();
                for (int i = 0; i < parts.length; i++) {
                    parts[i] = toHost(parts[i], category, e.getKey());
                    pieces.add(piece(bytes, category, parts[i], parts[i]));
                }
                p.set(q.withParts(parts));
                q.close();
            } else {
                Tensor t = p.tensor();
                Tensor host = toHost(t, category, e.getKey()).requiresGrad(t.requiresGrad());
                pieces.add(piece(bytes, category, host, host));
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

    /** Queues the unit's host pieces into slot s on the copy stream, after the device work queued so far. */
    @Override
    protected void fetch(int unit, int slot) {
        transfers.afterCompute();
        for (Entry e : units.get(unit).entries()) {
            for (Piece p : e.pieces()) {
                transfers.toDevice(p.home().reshape(p.home().numel()), view(slot, p, Shape.of(p.home().numel())));
            }
        }
    }

    @Override
    protected void ready() {
        transfers.computeAfterCopies();
    }

    /**
     * Waits for the copies in flight and releases the copy streams; the parameters keep their host values, which
     * computation then reads in place (over the bus; the owner stops calling {@link #acquire}).
     */
    @Override
    public void close() {
        if (markClosed()) {
            transfers.close();
        }
    }
}
