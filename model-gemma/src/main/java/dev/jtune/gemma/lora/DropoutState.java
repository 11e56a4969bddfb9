package dev.jtune.gemma.lora;

/**
 * Whether LoRA dropout is active and the seed of the current micro-batch, shared by a model's adapters. The
 * trainer sets both before each forward; every adapter derives its own mask seed from this one and its index,
 * so a checkpointed layer's recomputation drops exactly what its first forward dropped.
 */
public final class DropoutState {
    private final double p;
    private volatile boolean training;
    private volatile long seed;

    public DropoutState(double p) {
        this.p = p;
    }

    public double p() {
        return p;
    }

    public boolean active() {
        return training && p > 0;
    }

    /** Turns dropout on for the micro-batch with this seed (off: {@link #eval()}). */
    public void train(long microBatchSeed) {
        this.seed = microBatchSeed;
        this.training = true;
    }

    public void eval() {
        this.training = false;
    }

    long seedFor(int adapterIndex) {
        return dev.jtune.engine.backend.CounterRng.bits(seed, adapterIndex);
    }
}
