package dev.jtune.train.loop;

import dev.jtune.gemma.model.Gemma3Model;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The builder starts from HF TrainingArguments' defaults, sets components by name and checks what it builds. */
class TrainerConfigTest {
    @Test
    void theDefaultsAreHfs() {
        TrainerConfig c = TrainerConfig.defaults();
        assertEquals(c, TrainerConfig.builder().build());
        // transformers.TrainingArguments: num_train_epochs 3, max_steps -1, per_device_{train,eval}_batch_size 8,
        // gradient_accumulation_steps 1, learning_rate 5e-5, lr_scheduler_type linear, warmup 0, weight_decay 0,
        // adam betas 0.9 / 0.999, adam_epsilon 1e-8, max_grad_norm 1.0, logging/save/eval steps 500,
        // save_strategy steps, eval_strategy no, save_total_limit None, seed 42
        assertEquals(new TrainerConfig(3, -1, 8, 1, 5e-5, LrSchedule.Type.LINEAR, 0, 0, 0, 0.9, 0.999, 1e-8, 1.0,
                Gemma3Model.Checkpointing.NONE, Gemma3Model.MlpTiling.NONE, dev.jtune.engine.ops.KeptAttention.GLOBAL, 500, TrainerConfig.SaveStrategy.STEPS, 500, 0, TrainerConfig.SaveStrategy.NO,
                500, 42, true, true, 8, 3, TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.DEVICE,
                TrainerConfig.OptimizerStepTiming.IMMEDIATE, TrainerConfig.ActivationPlacement.DEVICE, TrainerConfig.WeightPlacement.DEVICE,
                new Batching(Batching.Order.GROUP_BY_LENGTH, 0), TrainerConfig.CheckpointContents.MODEL_AND_STATE, java.util.List.of(), 1, 25L << 20,
                TrainerConfig.OptimizerSharding.NONE), c);
    }

    @Test
    void everySetterReachesItsComponent() {
        TrainerConfig c = TrainerConfig.builder().epochs(2).maxSteps(10).batchSize(4).gradientAccumulation(3).learningRate(1e-3)
                .schedule(LrSchedule.Type.COSINE).warmupRatio(0.1).warmupSteps(2).weightDecay(0.01).betas(0.8, 0.99)
                .epsilon(1e-6).maxGradNorm(0.5).checkpointing(Gemma3Model.Checkpointing.HALVES).mlpTiling(Gemma3Model.MlpTiling.shards(3))
                .keptAttention(dev.jtune.engine.ops.KeptAttention.ALL).loggingSteps(5)
                .save(TrainerConfig.SaveStrategy.EPOCH, 7).saveTotalLimit(2).eval(TrainerConfig.SaveStrategy.STEPS, 9)
                .evalBatchSize(6).seed(1).metricsFile(false).htmlReport(false).maxNonfiniteSteps(4)
                .optimizerState(TrainerConfig.OptimizerStatePrecision.BLOCKWISE_8BIT, TrainerConfig.OptimizerStatePlacement.HOST)
                .optimizerStepTiming(TrainerConfig.OptimizerStepTiming.DELAYED_ONE_STEP)
                .activationPlacement(TrainerConfig.ActivationPlacement.HOST).weightPlacement(TrainerConfig.WeightPlacement.HOST)
                .batching(new Batching(Batching.Order.RANDOM, 128)).checkpointContents(TrainerConfig.CheckpointContents.MODEL_ONLY)
                .groupLearningRates(java.util.List.of(new TrainerConfig.GroupLearningRate("vision_tower", 2e-6))).worldSize(4).ddpBucketBytes(4096).build();
        assertEquals(new TrainerConfig(2, 10, 4, 3, 1e-3, LrSchedule.Type.COSINE, 0.1, 2, 0.01, 0.8, 0.99, 1e-6, 0.5,
                Gemma3Model.Checkpointing.HALVES, Gemma3Model.MlpTiling.shards(3), dev.jtune.engine.ops.KeptAttention.ALL, 5, TrainerConfig.SaveStrategy.EPOCH, 7, 2, TrainerConfig.SaveStrategy.STEPS,
                9, 1, false, false, 6, 4, TrainerConfig.OptimizerStatePrecision.BLOCKWISE_8BIT,
                TrainerConfig.OptimizerStatePlacement.HOST, TrainerConfig.OptimizerStepTiming.DELAYED_ONE_STEP,
                TrainerConfig.ActivationPlacement.HOST, TrainerConfig.WeightPlacement.HOST, new Batching(Batching.Order.RANDOM, 128),
                TrainerConfig.CheckpointContents.MODEL_ONLY, java.util.List.of(new TrainerConfig.GroupLearningRate("vision_tower", 2e-6)), 4, 4096,
                TrainerConfig.OptimizerSharding.NONE), c);
        assertEquals(c, c.toBuilder().build(), "toBuilder keeps every component");
        // ZeRO stage 1 shards AdamW's fp32 device state only (so not with the 8-bit host state above)
        TrainerConfig sharded = TrainerConfig.builder().worldSize(2).optimizerSharding(TrainerConfig.OptimizerSharding.STATE).build();
        assertEquals(TrainerConfig.OptimizerSharding.STATE, sharded.optimizerSharding());
        assertEquals(sharded, sharded.toBuilder().build(), "toBuilder keeps the sharding");
        assertEquals(c.seed() + 1, c.toBuilder().seed(2).build().seed());
    }

    @Test
    void aGroupLearningRateNeedsAMainOne() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder().learningRate(0)
                .groupLearningRates(java.util.List.of(new TrainerConfig.GroupLearningRate("vision_tower", 1e-5))).build());
        org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("multiple of the main one"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new TrainerConfig.GroupLearningRate("", 1e-5));
        assertThrows(IllegalArgumentException.class, () -> new TrainerConfig.GroupLearningRate("x", -1));
    }

    @Test
    void buildChecksTheSettings() {
        // the 8-bit state shards on the device (and paged), not on the host (whose step keeps fp32 moments)
        TrainerConfig.builder().optimizerSharding(TrainerConfig.OptimizerSharding.STATE)
                .optimizerState(TrainerConfig.OptimizerStatePrecision.BLOCKWISE_8BIT, TrainerConfig.OptimizerStatePlacement.DEVICE).build();
        IllegalArgumentException sharding = assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder()
                .optimizerSharding(TrainerConfig.OptimizerSharding.STATE)
                .optimizerState(TrainerConfig.OptimizerStatePrecision.BLOCKWISE_8BIT, TrainerConfig.OptimizerStatePlacement.HOST).build());
        org.junit.jupiter.api.Assertions.assertTrue(sharding.getMessage().contains("ZeRO stage 1") && sharding.getMessage().contains("BLOCKWISE_8BIT"),
                sharding.getMessage());
        // the host-offloaded optimizer shards in step and with its delayed step (ZeRO-Offload)
        TrainerConfig.builder().optimizerSharding(TrainerConfig.OptimizerSharding.STATE)
                .optimizerState(TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.HOST).build();
        TrainerConfig.builder().optimizerSharding(TrainerConfig.OptimizerSharding.STATE)
                .optimizerState(TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.HOST)
                .optimizerStepTiming(TrainerConfig.OptimizerStepTiming.DELAYED_ONE_STEP).build();
        TrainerConfig.builder().optimizerSharding(TrainerConfig.OptimizerSharding.STATE)
                .optimizerState(TrainerConfig.OptimizerStatePrecision.FP32, TrainerConfig.OptimizerStatePlacement.PAGED_HOST).build();
        assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder().worldSize(0).build());
        assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder().ddpBucketBytes(0).build());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder().batchSize(0).build());
        assertTrue(e.getMessage().contains("batch size"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder().epochs(0).maxSteps(-1).build());
        assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder().maxNonfiniteSteps(0).build());
        assertThrows(NullPointerException.class, () -> TrainerConfig.builder().checkpointing(null).build());
        assertThrows(NullPointerException.class, () -> TrainerConfig.builder().optimizerState(null, TrainerConfig.OptimizerStatePlacement.DEVICE).build());
        IllegalArgumentException offload = assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder()
                .activationPlacement(TrainerConfig.ActivationPlacement.HOST).build());
        assertTrue(offload.getMessage().contains("--gradient_checkpointing"), offload.getMessage());
        IllegalArgumentException delayed = assertThrows(IllegalArgumentException.class, () -> TrainerConfig.builder()
                .optimizerStepTiming(TrainerConfig.OptimizerStepTiming.DELAYED_ONE_STEP).build());
        assertTrue(delayed.getMessage().contains("HOST placement"), delayed.getMessage());
    }
}
