package dev.jtune.train.args;

/** {@code --optim}: HF's optimizer names that jtune accepts. The three AdamW spellings are all jtune's AdamW. */
public enum Optim implements Choice {
    ADAMW_TORCH,
    ADAMW_TORCH_FUSED,
    ADAMW_HF,
    SGD;

    /** Whether this name means jtune's AdamW (decoupled weight decay, fp32 moments). */
    public boolean isAdamW() {
        return this != SGD;
    }
}
