package dev.jtune.engine.optim;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.engine.fused.ParameterTable;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.SequencedMap;

/**
 * bitsandbytes' blockwise 8-bit AdamW ({@code bnb.optim.AdamW(optim_bits=8)}, HF's {@code adamw_bnb_8bit} and
 * {@code adamw_8bit}) on the parameters' device.
 *
 * <ul>
 * <li>A parameter of at least {@link #MIN_8BIT_SIZE} elements keeps both moments in 8 bits: uint8 codes in the
 *     signed (first moment) and unsigned (second moment) dynamic maps, with one fp32 absmax per block of 256
 *     ({@code fused.AdamW8bitKernel}, which states the algorithm). Such parameters are grouped by dtype; each group
 *     is one flat buffer of codes per moment over a {@link FlatLayout} (each parameter starts a block, as
 *     bitsandbytes quantizes per tensor) and is updated by one kernel launch.</li>
 * <li>A smaller parameter (norms, biases) keeps fp32 moments, as bitsandbytes' {@code min_8bit_size} does, stepped
 *     per tensor as bitsandbytes' 32-bit kernel ({@code kOptimizer32bit2State}) steps it: the fp32 AdamW kernel
 *     without decay, then {@code p *= 1 - lr wd} (the decay after the Adam step, as in the 8-bit path; torch decays
 *     first).</li>
 * <li>A 16-bit parameter is updated through an fp32 master copy (flat, for an 8-bit group), rounded into the weight
 *     after each step, as {@link AdamW} does; bitsandbytes would update the bf16 weight itself.</li>
 * <li>Gradients: the optimizer attaches a persistent flat {@link GradientBuffer} per group (8-bit groups over their
 *     state's layout, so one launch reads the whole gradient); {@link #zeroGrad} zeroes them.</li>
 * </ul>
 * State is allocated in the scope current at construction (counted as OPTIMIZER). {@link #memory()} reports it.
 */
public final class AdamW8bit implements Optimizer {
    /** bitsandbytes' {@code min_8bit_size}: smaller parameters keep fp32 state. */
    public static final long MIN_8BIT_SIZE = 4096;

    /**
     * What the optimizer keeps on the device, in bytes: the moments (8-bit codes, their block maxima and the small
     * parameters' fp32 moments, alignment gaps included) and, apart, the fp32 master copies of 16-bit parameters.
     *
     * @param stateBytes     both moments of every parameter
     * @param masterBytes    the fp32 master copies (0 for fp32 parameters)
     * @param parameters     elements of all the parameters
     * @param eightBitParameters elements of the parameters with 8-bit state
     */
    public record Memory(long stateBytes, long masterBytes, long parameters, long eightBitParameters) {
        /** State bytes per parameter element, not counting the master copy. */
        public double stateBytesPerParameter() {
            return parameters == 0 ? 0 : (double) stateBytes / parameters;
        }
    }

    /** One 8-bit group: parameters of one dtype and {@link ParamGroup} in one flat layout. */
    private record Group(ParamGroup hyper, GradientBuffer grads, ParameterTable table, Tensor master, AdamW8bitKernel.State state) {
        FlatLayout layout() {
            return table.layout();
        }
    }

    /** One parameter with fp32 state. */
    private record Small(ParamGroup hyper, String name, Tensor param, Tensor master, Tensor m, Tensor v) {
    }

    private final List<String> names;
    private final List<Group> groups = new ArrayList<>();
    private final List<Small> smalls = new ArrayList<>();
    private final List<GradientBuffer> buffers = new ArrayList<>();
    private AdamW.Config config;
    private long steps;

    /**
     * Builds the state of {@code params} (name to leaf, all on one device, F32, BF16 or F16, requiring grad) and
     * attaches their gradient buffers (any gradient they hold is freed).
     */
    public AdamW8bit(SequencedMap<String, Tensor> params, AdamW.Config config) {
        this(params, config, Placement.DEVICE);
    }

    /**
     * As {@link #AdamW8bit(SequencedMap, AdamW.Config)}, with the 8-bit groups' state (codes, absmax, master copy) at
     * {@code statePlacement}: {@link Placement#HOST_MAPPED} is bitsandbytes' {@code paged_adamw_8bit} without managed
     * memory (pinned host memory the kernel reaches over PCIe). The fp32 state of tensors under 4096 elements stays on
     * the device: it is a few kilobytes.
     */
    public AdamW8bit(SequencedMap<String, Tensor> params, AdamW.Config config, Placement statePlacement) {
        this(params, config, statePlacement, ParamGroup.Assignment.UNIFORM);
    }

    /**
     * As {@link #AdamW8bit(SequencedMap, AdamW.Config, Placement)}, each parameter stepped with its {@link ParamGroup}'s
     * learning rate and weight decay (torch's param_groups, as bitsandbytes takes them): each group's state in flat
     * buffers of its own.
     */
    public AdamW8bit(SequencedMap<String, Tensor> params, AdamW.Config config, Placement statePlacement, ParamGroup.Assignment groupOf) {
        this.config = Objects.requireNonNull(config, "config");
        Objects.requireNonNull(statePlacement, "statePlacement");
        if (params.isEmpty()) {
            throw new IllegalArgumentException("AdamW8bit: no parameters");
        }
        Device device = params.firstEntry().getValue().device();
        record Key(DType dtype, ParamGroup hyper) {
        }
        Map<Key, SequencedMap<String, Tensor>> large = new LinkedHashMap<>();
        Map<Key, SequencedMap<String, Tensor>> small = new LinkedHashMap<>();
        for (var e : params.entrySet()) {
            Tensor p = e.getValue();
            if (p.dtype() != DType.F32 && p.dtype() != DType.BF16 && p.dtype() != DType.F16) {
                throw new DTypeException("AdamW8bit: parameter " + e.getKey() + " " + p.describe() + " must be F32, BF16 or F16");
            }
            if (!p.device().equals(device)) {
                throw new IllegalArgumentException("AdamW8bit: parameter " + e.getKey() + " is on " + p.device() + ", the others on " + device);
            }
            (p.numel() >= MIN_8BIT_SIZE ? large : small).computeIfAbsent(new Key(p.dtype(), groupOf.of(e.getKey())), k -> new LinkedHashMap<>())
                    .put(e.getKey(), p);
        }
        this.names = List.copyOf(params.sequencedKeySet());
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Map.Entry<Key, SequencedMap<String, Tensor>> group : large.entrySet()) {
                GradientBuffer grads = GradientBuffer.attach(group.getValue());
                buffers.add(grads);
                groups.add(newGroup(group.getKey().hyper(), grads, statePlacement));
            }
            for (Map.Entry<Key, SequencedMap<String, Tensor>> group : small.entrySet()) {
                buffers.add(GradientBuffer.attach(group.getValue()));
                try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
                    for (var e : group.getValue().entrySet()) {
                        Tensor p = e.getValue();
                        Tensor master = null;
                        if (p.dtype() != DType.F32) {
                            try (Scope.Entered m = Scope.countAs(MemoryCategory.MASTER_WEIGHTS)) {
                                master = p.cast(DType.F32);
                            }
                        }
                        smalls.add(new Small(group.getKey().hyper(), e.getKey(), p, master, Tensor.zeros(p.shape(), DType.F32, p.device()),
                                Tensor.zeros(p.shape(), DType.F32, p.device())));
                    }
                }
            }
        }
    }

    /** A group's state, zero (codes 0 and absmax 0 decode to 0, as bitsandbytes starts), and its master copy. */
    private static Group newGroup(ParamGroup hyper, GradientBuffer grads, Placement placement) {
        FlatLayout layout = grads.layout();
        List<Tensor> params = grads.parameters();
        Device device = grads.device();
        try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
            ParameterTable table = new ParameterTable(params, layout);
            Tensor master = null;
            if (grads.dtype() != DType.F32) {
                try (Scope.Entered m = Scope.countAs(MemoryCategory.MASTER_WEIGHTS)) {
                    master = Tensor.zeros(Shape.of(layout.numel()), DType.F32, device, placement);
                }
                for (int i = 0; i < params.size(); i++) {
                    Ops.copyInto(params.get(i), layout.view(master, i));
                }
            }
            return new Group(hyper, grads, table, master, AdamW8bitKernel.State.zeros(layout.numel(), device, placement));
        }
    }

    @Override
    public void step() {
        steps++;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Group g : groups) {
                checkAttached(g.grads);
                AdamW8bitKernel.on(g.grads.flat()).step(g.table, g.master, g.grads.flat(), g.state, g.hyper.step(config, steps), null);
            }
            // bitsandbytes' 32-bit step decays after the Adam step: the kernel steps without decay, then one scale
            for (Small st : smalls) {
                AdamWStep s = st.hyper.step(config, steps);
                AdamWStep undecayed = s.withoutDecay();
                Tensor target = st.master != null ? st.master : st.param;
                AdamWKernel.on(target).step(target, st.param.grad().contiguous(), st.m, st.v, undecayed, null);
                if (s.weightDecay() > 0) {
                    Backends.of(target).scale(target, 1 - s.lr() * s.weightDecay(), target);
                }
                if (st.master != null) {
                    Ops.copyInto(st.master, st.param);
                }
            }
        }
    }

    /** The kernel reads the flat buffer: a parameter whose gradient was replaced since would be stepped with zeros. */
    private static void checkAttached(GradientBuffer grads) {
        List<Tensor> params = grads.parameters();
        for (int i = 0; i < params.size(); i++) {
            Tensor g = params.get(i).grad();
            if (g == null || !params.get(i).hasAttachedGrad() || g.isClosed() || g.address() != grads.flat().address()
                    + g.dtype().bytesFor(grads.layout().entries().get(i).offset())) {
                throw new IllegalStateException("AdamW8bit: the gradient of " + grads.layout().entries().get(i).name()
                        + " is no longer the optimizer's flat buffer (was another gradient attached?)");
            }
        }
    }

    /** Zeroes every gradient buffer (the gradients stay attached). */
    @Override
    public void zeroGrad() {
        for (GradientBuffer b : buffers) {
            b.zero();
        }
    }

    /** The flat gradient buffers this optimizer attached, one per group (8-bit groups first). */
    @Override
    public List<GradientBuffer> gradientBuffers() {
        return List.copyOf(buffers);
    }

    @Override
    public void learningRate(double lr) {
        config = config.withLr(lr);
    }

    @Override
    public double learningRate() {
        return config.lr();
    }

    @Override
    public long steps() {
        return steps;
    }

    public AdamW.Config config() {
        return config;
    }

    /** What the state occupies on the device (see {@link Memory}). */
    public Memory memory() {
        long state = 0;
        long master = 0;
        long params = 0;
        long eight = 0;
        for (Group g : groups) {
            AdamW8bitKernel.State s = g.state;
            state += bytes(s.m()) + bytes(s.v()) + bytes(s.absmaxM()) + bytes(s.absmaxV());
            master += g.master == null ? 0 : bytes(g.master);
            eight += g.layout().parameterElements();
        }
        for (Small st : smalls) {
            state += bytes(st.m) + bytes(st.v);
            master += st.master == null ? 0 : bytes(st.master);
            params += st.param.numel();
        }
        return new Memory(state, master, params + eight, eight);
    }

    private static long bytes(Tensor t) {
        return t.dtype().bytesFor(t.numel());
    }

    /**
     * The state by parameter name, in the constructor's order, for checkpoints: an 8-bit parameter has
     * {@code <name>.exp_avg.q8} and {@code <name>.exp_avg_sq.q8} (U8, the parameter's shape), {@code <name>.exp_avg.absmax}
     * and {@code <name>.exp_avg_sq.absmax} (F32 [ceil(numel / 256)]); a small one {@code <name>.exp_avg} and
     * {@code <name>.exp_avg_sq} (F32); a 16-bit one also {@code <name>.master} (F32). These are views of the live
     * state, so restoring them reproduces the run exactly.
     */
    @Override
    public SequencedMap<String, Tensor> state() {
        Map<String, SequencedMap<String, Tensor>> byName = new LinkedHashMap<>();
        for (Group g : groups) {
            for (int i = 0; i < g.layout().entries().size(); i++) {
                byName.put(g.layout().entries().get(i).name(), entryState(g.layout(), i, g.state, g.master));
            }
        }
        for (Small st : smalls) {
            SequencedMap<String, Tensor> kinds = new LinkedHashMap<>();
            kinds.put(st.name + ".exp_avg", st.m);
            kinds.put(st.name + ".exp_avg_sq", st.v);
            if (st.master != null) {
                kinds.put(st.name + ".master", st.master);
            }
            byName.put(st.name, kinds);
        }
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        for (String name : names) {
            out.putAll(byName.get(name));
        }
        return out;
    }

    /**
     * Entry i's 8-bit state under its checkpoint names, views of the flat state: {@code .exp_avg.q8},
     * {@code .exp_avg.absmax}, {@code .exp_avg_sq.q8}, {@code .exp_avg_sq.absmax}, then {@code .master} when
     * {@code master} is not null. Also the host-offloaded 8-bit state's names ({@link HostOffloadAdamW}), so a
     * checkpoint restores into either.
     */
    static SequencedMap<String, Tensor> entryState(FlatLayout layout, int i, AdamW8bitKernel.State state, Tensor master) {
        FlatLayout.Entry e = layout.entries().get(i);
        SequencedMap<String, Tensor> kinds = new LinkedHashMap<>();
        long b0 = e.offset() / AdamW8bitKernel.BLOCK;
        long b1 = Math.ceilDiv(e.end(), AdamW8bitKernel.BLOCK);
        kinds.put(e.name() + ".exp_avg.q8", layout.view(state.m(), i));
        kinds.put(e.name() + ".exp_avg.absmax", state.absmaxM().slice(0, b0, b1));
        kinds.put(e.name() + ".exp_avg_sq.q8", layout.view(state.v(), i));
        kinds.put(e.name() + ".exp_avg_sq.absmax", state.absmaxV().slice(0, b0, b1));
        if (master != null) {
            kinds.put(e.name() + ".master", layout.view(master, i));
        }
        return kinds;
    }

    /**
     * Restores {@link #state()} by name (same names and shapes; codes as U8, the rest any float dtype, any device),
     * then rounds each master copy into its weight, and sets the step count.
     */
    @Override
    public void restore(Map<String, Tensor> saved, long steps) {
        SequencedMap<String, Tensor> mine = state();
        SavedState.checkNames("AdamW8bit", mine.keySet(), saved);
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("adamw8bit-restore")) {
            for (Map.Entry<String, Tensor> e : mine.entrySet()) {
                SavedState.copy("AdamW8bit", e.getKey(), saved.get(e.getKey()), e.getValue());
            }
            for (Group g : groups) {
                if (g.master != null) {
                    for (int i = 0; i < g.table.parameters().size(); i++) {
                        Ops.copyInto(g.layout().view(g.master, i), g.table.parameters().get(i));
                    }
                }
            }
            for (Small st : smalls) {
                if (st.master != null) {
                    Ops.copyInto(st.master, st.param);
                }
            }
        }
        this.steps = steps;
    }

}
