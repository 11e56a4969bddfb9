package dev.jtune.train.args;

import dev.jtune.train.loop.TrainerConfig.OptimizerStatePlacement;
import dev.jtune.train.loop.TrainerConfig.OptimizerStatePrecision;

/**
 * {@code --optim}: HF TrainingArguments' optimizer names that jtune accepts (HF's {@code OptimizerNames} spelling).
 * Every AdamW name is one AdamW (decoupled weight decay, torch's semantics); the names differ only in how precise the
 * state is and where it lives, which {@link #statePrecision()} and {@link #statePlacement()} say for the trainer.
 * {@code --offload_optimizer cpu} moves any AdamW's state to the host instead.
 */
public enum Optim implements Choice {
    /** torch.optim.AdamW: fp32 state on the device. */
    ADAMW_TORCH(OptimizerStatePrecision.FP32, OptimizerStatePlacement.DEVICE),
    /** torch's fused AdamW: the same arithmetic; jtune's update is one multi-tensor launch anyway. */
    ADAMW_TORCH_FUSED(OptimizerStatePrecision.FP32, OptimizerStatePlacement.DEVICE),
    /** HF's own AdamW (deprecated there): the same arithmetic. */
    ADAMW_HF(OptimizerStatePrecision.FP32, OptimizerStatePlacement.DEVICE),
    /** bitsandbytes' AdamW8bit: blockwise 8-bit moments on the device. */
    ADAMW_BNB_8BIT(OptimizerStatePrecision.BLOCKWISE_8BIT, OptimizerStatePlacement.DEVICE),
    /** HF's alias of adamw_bnb_8bit. */
    ADAMW_8BIT(OptimizerStatePrecision.BLOCKWISE_8BIT, OptimizerStatePlacement.DEVICE),
    /** bitsandbytes' PagedAdamW8bit: blockwise 8-bit moments in pinned host memory the device maps. */
    PAGED_ADAMW_8BIT(OptimizerStatePrecision.BLOCKWISE_8BIT, OptimizerStatePlacement.PAGED_HOST),
    /** bitsandbytes' PagedAdamW32bit: fp32 moments in pinned host memory the device maps. */
    PAGED_ADAMW_32BIT(OptimizerStatePrecision.FP32, OptimizerStatePlacement.PAGED_HOST),
    /** Plain SGD (no momentum): not wired into the trainer yet. */
    SGD(OptimizerStatePrecision.FP32, OptimizerStatePlacement.DEVICE);

    private final OptimizerStatePrecision precision;
    private final OptimizerStatePlacement placement;

    Optim(OptimizerStatePrecision precision, OptimizerStatePlacement placement) {
        this.precision = precision;
        this.placement = placement;
    }

    /** Whether this name means jtune's AdamW (decoupled weight decay). */
    public boolean isAdamW() {
        return this != SGD;
    }

    /** How the moments are stored. */
    public OptimizerStatePrecision statePrecision() {
        return precision;
    }

    /** Where the state lives without {@code --offload_optimizer}: the device, or mapped host memory for the paged names. */
    public OptimizerStatePlacement statePlacement() {
        return placement;
    }

    /** An AdamW with fp32 state on the device: what a DeepSpeed {@code optimizer} block of type AdamW or Adam is. */
    public boolean isFp32DeviceAdamW() {
        return isAdamW() && precision == OptimizerStatePrecision.FP32 && placement == OptimizerStatePlacement.DEVICE;
    }
}
