package dev.jtune.engine.optim;

/** Updates parameters from their accumulated gradients. */
public interface Optimizer {
    /** One update of every parameter that has a gradient. */
    void step();

    /** Frees every parameter's gradient (the next backward starts afresh). */
    void zeroGrad();

    void learningRate(double lr);

    double learningRate();
}
