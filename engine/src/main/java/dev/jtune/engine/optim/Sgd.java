package dev.jtune.engine.optim;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;

import java.util.List;

/** Plain stochastic gradient descent: {@code p -= lr * grad}. */
public final class Sgd implements Optimizer {
    private final List<Tensor> params;
    private double lr;
    private long steps;

    public Sgd(List<Tensor> params, double lr) {
        this.params = List.copyOf(params);
        this.lr = lr;
    }

    @Override
    public void step() {
        steps++;
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("sgd")) {
            for (Tensor p : params) {
                Tensor g = p.grad();
                if (g != null) {
                    Ops.addInPlace(p, Ops.scale(g.cast(p.dtype()), -lr));
                }
            }
        }
    }

    @Override
    public void zeroGrad() {
        for (Tensor p : params) {
            p.zeroGrad();
        }
    }

    @Override
    public long steps() {
        return steps;
    }

    /** Plain SGD keeps no state. */
    @Override
    public java.util.SequencedMap<String, Tensor> state() {
        return new java.util.LinkedHashMap<>();
    }

    @Override
    public void restore(java.util.Map<String, Tensor> saved, long steps) {
        if (!saved.isEmpty()) {
            throw new IllegalArgumentException("Sgd keeps no state, but the checkpoint holds " + saved.keySet());
        }
        this.steps = steps;
    }

    @Override
    public void learningRate(double value) {
        lr = value;
    }

    @Override
    public double learningRate() {
        return lr;
    }
}
