package dev.jtune.engine.optim;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamWKernel;

import java.util.ArrayList;
import java.util.List;

/**
 * torch.optim.AdamW on the parameters' device: decoupled weight decay, bias-corrected moments, one fused kernel
 * per parameter. Moments are fp32; a parameter held in bf16/f16 gets an fp32 master copy that the update works
 * on, rounded back into the parameter after each step (bf16 alone would lose small updates). State is
 * allocated in the scope current at construction (counted as OPTIMIZER), so build the optimizer where the
 * parameters live.
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

    private record State(Tensor param, Tensor master, Tensor m, Tensor v) {
    }

    private final List<State> states = new ArrayList<>();
    private Config config;
    private long step;

    public AdamW(List<Tensor> params, Config config) {
        this.config = config;
        try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER); Autograd.GradMode off = Autograd.noGrad()) {
            for (Tensor p : params) {
                if (!p.dtype().isFloating()) {
                    throw new DTypeException("AdamW: parameter " + p.describe() + " is not floating");
                }
                Tensor master = p.dtype() == DType.F32 || p.dtype() == DType.F64 ? null : p.cast(DType.F32);
                DType stateType = p.dtype() == DType.F64 ? DType.F64 : DType.F32;
                states.add(new State(p, master, Tensor.zeros(p.shape(), stateType, p.device()), Tensor.zeros(p.shape(), stateType, p.device())));
            }
        }
    }

    @Override
    public void step() {
        step++;
        AdamWStep s = new AdamWStep(config.lr(), config.beta1(), config.beta2(), config.eps(), config.weightDecay(), step);
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (State st : states) {
                Tensor g = st.param.grad();
                if (g == null) {
                    continue;
                }
                Tensor target = st.master != null ? st.master : st.param;
                AdamWKernel.on(target).step(target, g.contiguous(), st.m, st.v, s, null);
                if (st.master != null) {
                    Ops.copyInto(st.master, st.param);
                }
            }
        }
    }

    /**
     * The optimizer's state by name, for checkpoints: per parameter i, {@code i.exp_avg} and {@code i.exp_avg_sq}
     * (torch's names) and, for 16-bit parameters, {@code i.master}.
     */
    @Override
    public java.util.SequencedMap<String, Tensor> state() {
        java.util.SequencedMap<String, Tensor> out = new java.util.LinkedHashMap<>();
        for (int i = 0; i < states.size(); i++) {
            State st = states.get(i);
            out.put(i + ".exp_avg", st.m);
            out.put(i + ".exp_avg_sq", st.v);
            if (st.master != null) {
                out.put(i + ".master", st.master);
            }
        }
        return out;
    }

    /** Restores {@link #state()} and the step count from a checkpoint (tensors of the same names and shapes). */
    @Override
    public void restore(java.util.Map<String, Tensor> saved, long steps) {
        java.util.Map<String, Tensor> mine = state();
        if (!saved.keySet().equals(mine.keySet())) {
            throw new ShapeException("AdamW: checkpoint state " + saved.keySet().size() + " tensors does not match this optimizer's "
                    + mine.keySet().size() + " (a different set of trainable parameters?)");
        }
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (java.util.Map.Entry<String, Tensor> e : mine.entrySet()) {
                Tensor src = saved.get(e.getKey());
                if (!src.shape().equals(e.getValue().shape())) {
                    throw new ShapeException("AdamW: checkpoint state " + e.getKey() + " has shape " + src.shape()
                            + ", the parameter needs " + e.getValue().shape());
                }
                Ops.copyInto(src.to(e.getValue().device()).cast(e.getValue().dtype()), e.getValue());
            }
        }
        this.step = steps;
    }

    /** Steps taken so far (the bias corrections' t). */
    @Override
    public long steps() {
        return step;
    }

    @Override
    public void zeroGrad() {
        for (State st : states) {
            st.param.zeroGrad();
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

    public Config config() {
        return config;
    }
}
