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

    public Sgd(List<Tensor> params, double lr) {
        this.params = List.copyOf(params);
        this.lr = lr;
    }

    @Override
    public void step() {
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
    public void learningRate(double value) {
        lr = value;
    }

    @Override
    public double learningRate() {
        return lr;
    }
}
