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
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.engine.fused.ParameterTable;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * torch.optim.AdamW on the parameters' device: decoupled weight decay, bias-corrected moments. The parameters are
 * grouped by (device, dtype, {@link ParamGroup}); each group keeps its state in flat buffers over one {@link FlatLayout}: a
 * {@link GradientBuffer} that backward accumulates into, fp32 moments and, for bf16/f16 parameters, an fp32 master
 * copy that the update works on and rounds back into the parameters (bf16 alone would lose small updates). A step is
 * one multi-tensor launch per group, {@link #zeroGrad} one fill per group, and {@link #gradientBuffers} hands the
 * gradient buffers to {@link GradClip#clipFlatGradNorm} (one sum of squares per buffer). Every parameter is updated
 * every step (one that got no gradient sees a zero one, as torch's with {@code zero_grad(set_to_none=False)}).
 * State is allocated in the scope current at construction (moments and master counted as OPTIMIZER, gradients as
 * GRADIENTS), so build the optimizer where the parameters live; any gradient the parameters hold then is dropped.
 */
public final class AdamW implements Optimizer {
    /** torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2. */
    public record Config(double lr, double beta1, double beta2, double eps, double weightDecay) {
        public Config {
            if (!(lr >= 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps >= 0) || !(weightDecay >= 0)) {
                throw new IllegalArgumentException("AdamW: lr >= 0, 0 <= betas < 1, eps >= 0, weight decay >= 0 required, got " + this);
            }
        }

        public static Config defaults() {
            return new Config(1e-3, 0.9, 0.999, 1e-8, 1e-2);
        }

        public Config withLr(double value) {
            return new Config(value, beta1, beta2, eps, weightDecay);
        }
    }

    /**
     * One (device, dtype, parameter group) group: its parameter table and flat buffers (master null for F32/F64
     * parameters), stepped with its {@link ParamGroup}'s scalars.
     */
    private record Group(ParamGroup hyper, ParameterTable table, GradientBuffer grads, Tensor master, Tensor m, Tensor v) {
    }

    /** What puts parameters in one group: the flat buffers' device and dtype, and the step's scalars. */
    record GroupKey(Device device, DType dtype, ParamGroup hyper) {
    }

    /** The parameters by group, each group's and the groups' order that of {@code params}; each floating. */
    static Map<GroupKey, SequencedMap<String, Tensor>> grouped(String who, SequencedMap<String, Tensor> params, ParamGroup.Assignment groupOf) {
        Map<GroupKey, SequencedMap<String, Tensor>> byGroup = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            Tensor p = e.getValue();
            if (!p.dtype().isFloating()) {
                throw new DTypeException(who + ": parameter " + e.getKey() + " " + p.describe() + " is not floating");
            }
            byGroup.computeIfAbsent(new GroupKey(p.device(), p.dtype(), groupOf.of(e.getKey())), k -> new LinkedHashMap<>()).put(e.getKey(), p);
        }
        return byGroup;
    }

    /** The checkpoint state's names of {@code params} in their order: exp_avg, exp_avg_sq and, for 16-bit parameters, master. */
    static List<String> stateNames(SequencedMap<String, Tensor> params) {
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            names.add(e.getKey() + ".exp_avg");
            names.add(e.getKey() + ".exp_avg_sq");
            if (needsMaster(e.getValue().dtype())) {
                names.add(e.getKey() + ".master");
            }
        }
        return names;
    }

    /** Whether a parameter of {@code dtype} is stepped through an fp32 master copy (16-bit weights). */
    static boolean needsMaster(DType dtype) {
        return dtype != DType.F32 && dtype != DType.F64;
    }

    private final List<Group> groups = new ArrayList<>();
    private final SequencedMap<String, Tensor> state = new LinkedHashMap<>();
    private final Placement statePlacement;
    private Config config;
    private long step;

    /** Parameters by name (checkpoint entries are named after them), each a floating leaf that requires grad. */
    public AdamW(SequencedMap<String, Tensor> params, Config config) {
        this(params, config, Placement.DEVICE);
    }

    /**
     * As {@link #AdamW(SequencedMap, Config)}, with the master copy and both moments at {@code statePlacement}:
     * {@link Placement#HOST_MAPPED} is bitsandbytes' paged optimizer ({@code paged_adamw_32bit}) without managed
     * memory: the state stays in pinned host memory that the update kernel reads and writes over PCIe, and the device
     * holds only the parameters and their gradients.
     */
    public AdamW(SequencedMap<String, Tensor> params, Config config, Placement statePlacement) {
        this(params, config, statePlacement, ParamGroup.Assignment.UNIFORM);
    }

    /**
     * As {@link #AdamW(SequencedMap, Config, Placement)}, each parameter stepped with its {@link ParamGroup}'s learning
     * rate and weight decay (torch's param_groups): each group's state in flat buffers of its own.
     */
    public AdamW(SequencedMap<String, Tensor> params, Config config, Placement statePlacement, ParamGroup.Assignment groupOf) {
        this.config = config;
        this.statePlacement = java.util.Objects.requireNonNull(statePlacement, "statePlacement");
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Map.Entry<GroupKey, SequencedMap<String, Tensor>> e : grouped("AdamW", params, groupOf).entrySet()) {
                groups.add(group(e.getKey().hyper(), e.getValue(), statePlacement));
            }
        }
        SequencedMap<String, Tensor> views = new LinkedHashMap<>();
        for (Group g : groups) {
            FlatLayout layout = g.table().layout();
            for (int i = 0; i < layout.entries().size(); i++) {
                String name = layout.entries().get(i).name();
                views.put(name + ".exp_avg", layout.view(g.m(), i));
                views.put(name + ".exp_avg_sq", layout.view(g.v(), i));
                if (g.master() != null) {
                    views.put(name + ".master", layout.view(g.master(), i));
                }
            }
        }
        // in the parameters' order, whatever the grouping
        for (String name : params.keySet()) {
            for (String kind : List.of(".exp_avg", ".exp_avg_sq", ".master")) {
                Tensor t = views.get(name + kind);
                if (t != null) {
                    state.put(name + kind, t);
                }
            }
        }
    }

    /** Parameters named "0", "1", ... in list order. */
    public AdamW(List<Tensor> params, Config config) {
        this(indexed(params), config);
    }

    private static SequencedMap<String, Tensor> indexed(List<Tensor> params) {
        SequencedMap<String, Tensor> named = new LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) {
            named.put(Integer.toString(i), params.get(i));
        }
        return named;
    }

    private static Group group(ParamGroup hyper, SequencedMap<String, Tensor> named, Placement placement) {
        GradientBuffer grads = GradientBuffer.attach(named);
        FlatLayout layout = grads.layout();
        DType dtype = grads.dtype();
        Device device = grads.device();
        DType stateType = dtype == DType.F64 ? DType.F64 : DType.F32;
        try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
            ParameterTable table = new ParameterTable(grads.parameters(), layout);
            Shape flat = Shape.of(layout.numel());
            Tensor master = null;
            if (needsMaster(dtype)) {
                try (Scope.Entered m = Scope.countAs(MemoryCategory.MASTER_WEIGHTS)) {
                    master = Tensor.zeros(flat, DType.F32, device, placement);
                }
                for (int i = 0; i < layout.entries().size(); i++) {
                    Ops.copyInto(grads.parameters().get(i), layout.view(master, i));
                }
            }
            return new Group(hyper, table, grads, master, Tensor.zeros(flat, stateType, device, placement),
                    Tensor.zeros(flat, stateType, device, placement));
        }
    }

    @Override
    public void step() {
        step++;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Group g : groups) {
                AdamWStep s = g.hyper().step(config, step);
                AdamWKernel.on(g.m()).flatStep(g.table(), g.grads().flat(), g.master(), g.m(), g.v(), s, null);
            }
        }
    }

    /**
     * The optimizer's state by name, for checkpoints: per parameter, {@code <name>.exp_avg} and {@code <name>.exp_avg_sq}
     * (torch's names) and, for 16-bit parameters, {@code <name>.master}, in the parameters' order; each a view of the
     * flat buffers in the parameter's shape.
     */
    @Override
    public SequencedMap<String, Tensor> state() {
        return java.util.Collections.unmodifiableSequencedMap(state);
    }

    /**
     * Restores {@link #state()} and the step count from a checkpoint: the same names and shapes, any device and float
     * dtype. What differs is named.
     */
    @Override
    public void restore(Map<String, Tensor> saved, long steps) {
        SavedState.checkNames("AdamW", state.keySet(), saved);
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Map.Entry<String, Tensor> e : state.entrySet()) {
                SavedState.copy("AdamW", e.getKey(), saved.get(e.getKey()), e.getValue());
            }
        }
        this.step = steps;
    }

    /** Steps taken so far (the bias corrections' t). */
    @Override
    public long steps() {
        return step;
    }

    /** Zeroes every gradient: one fill per group (the gradients stay attached to their buffers). */
    @Override
    public void zeroGrad() {
        for (Group g : groups) {
            g.grads().zero();
        }
    }

    /** One flat gradient buffer per (device, dtype) group, for clipping ({@link GradClip#clipFlatGradNorm}). */
    @Override
    public List<GradientBuffer> gradientBuffers() {
        return groups.stream().map(Group::grads).toList();
    }

    /** Group i's flat state buffers, for tests: m, v and (16-bit parameters) the master copy. */
    List<Tensor> flatState(int group) {
        Group g = groups.get(group);
        return g.master() == null ? List.of(g.m(), g.v()) : List.of(g.m(), g.v(), g.master());
    }

    @Override
    public void learningRate(double lr) {
        config = config.withLr(lr);
    }

    @Override
    public double learningRate() {
        return config.lr();
    }

    /** Where the master copy and the moments live. */
    public Placement statePlacement() {
        return statePlacement;
    }

    public Config config() {
        return config;
    }
}
