package dev.jtune.engine.backend;

/**
 * The scalars of one AdamW step, torch.optim.AdamW's semantics: decoupled weight decay
 * ({@code p -= lr * weightDecay * p}), then the Adam update with bias corrections {@code 1 - beta^step}.
 */
public record AdamWStep(double lr, double beta1, double beta2, double eps, double weightDecay, long step) {
    public AdamWStep {
        if (step < 1) {
            throw new IllegalArgumentException("AdamW step counts from 1, got " + step);
        }
    }

    /** The same step without weight decay (bitsandbytes' 32-bit step decays after the Adam update, as one scale). */
    public AdamWStep withoutDecay() {
        return new AdamWStep(lr, beta1, beta2, eps, 0, step);
    }

    public double biasCorrection1() {
        return 1 - Math.pow(beta1, step);
    }

    public double biasCorrection2() {
        return 1 - Math.pow(beta2, step);
    }
}
