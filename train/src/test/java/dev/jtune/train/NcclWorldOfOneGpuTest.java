package dev.jtune.train;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.dist.NcclCollectives;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.loop.RunIdentity;
import dev.jtune.train.loop.StepRecord;
import dev.jtune.train.loop.Trainer;
import dev.jtune.train.loop.TrainerConfig;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Issue 16's one-GPU row: the embedded default trained through a world of one rank on NCCL (every gradient and the
 * loss all-reduced, which at one rank copies them) gives the plain trainer's loss curve and gradient norms bit for bit,
 * and its eval losses (the ranks' shares of the eval set summed in fp64 through NCCL) too.
 */
@Tag("gpu")
class NcclWorldOfOneGpuTest {
    private static List<StepRecord> run(TrainCommand.DefaultSetup d, Collectives world, Path out, TrainerConfig.OptimizerSharding sharding,
                                        Gemma3Model.Checkpointing checkpointing, TrainerConfig.OptimizerStatePlacement state,
                                        TrainerConfig.OptimizerStatePrecision precision, double maxGradNorm) {
        TrainerConfig.Builder tc = d.trainerConfig().toBuilder().maxSteps(6).loggingSteps(1).save(TrainerConfig.SaveStrategy.NO, 0)
                .eval(TrainerConfig.SaveStrategy.STEPS, 3).checkpointing(checkpointing).optimizerSharding(sharding)
                .optimizerState(precision, state);
        if (maxGradNorm >= 0) {
            tc.maxGradNorm(maxGradNorm);
        }
        return run(d, false, tc.build(), world, out);
    }

    /** {@code full}: every weight of the default model trained, else its QLoRA. */
    private static List<StepRecord> run(TrainCommand.DefaultSetup d, boolean full, TrainerConfig tc, Collectives world, Path out) {
        try (Scope run = Scope.open("run", MemoryCategory.WEIGHTS)) {
            // the eval set: the first examples again (what it is does not matter, only that both runs see the same)
            List<dev.jtune.train.data.Example> evalSet = d.examples().subList(0, Math.min(5, d.examples().size()));
            var trainable = full ? dev.jtune.train.loop.Trainable.full(d.randomModel(), "default") : d.qlora(d.randomModel(), "default");
            Trainer trainer = Trainer.builder(tc, trainable).train(d.examples()).eval(evalSet).outputDir(out).padId(d.padId())
                    .world(world).info(new Trainer.RunInfo("nccl", RunIdentity.builder().fixed("m", "default").build(), List.of())).build();
            try (trainer) {
                return trainer.run(Optional.empty(), Long.MAX_VALUE);
            }
        }
    }

    @Test
    void aWorldOfOneTrainsAsThePlainTrainerBitForBit(@TempDir Path tmp) {
        worldOfOne(tmp, TrainerConfig.OptimizerSharding.NONE);
    }

    /**
     * ZeRO stage 2 through NCCL at one rank: each bucket reduce-scattered (a copy) into the shard, which is then the
     * whole flat layout, and stepped by the sharded AdamW: the plain trainer's numbers, bit for bit (each adapter
     * weight gets one contribution a backward, so even the first backward sums nothing in another order).
     */
    @Test
    void aWorldOfOneWithShardedGradientsTrainsAsThePlainTrainerBitForBit(@TempDir Path tmp) {
        worldOfOne(tmp, TrainerConfig.OptimizerSharding.GRADIENTS);
    }

    /**
     * ZeRO stage 3 through NCCL at one rank: every layer's frozen weights (the NF4 base, the norms) in one part that is
     * the whole, all-gathered (a copy) into a slot as each layer is reached: the plain trainer's numbers, bit for bit,
     * both recomputing layers (stage 3 needs it).
     */
    @Test
    void aWorldOfOneWithShardedFrozenWeightsTrainsAsThePlainTrainerBitForBit(@TempDir Path tmp) {
        worldOfOne(tmp, TrainerConfig.OptimizerSharding.PARAMETERS);
    }

    /**
     * ZeRO-Offload through NCCL at one rank: stage 2 with the state on the host (each bucket reduce-scattered into the
     * shard, copied to the host, stepped there by HostAdamW, the weights copied back and all-gathered) against the plain
     * trainer's host-offloaded AdamW (gradients streamed to the host during backward): the same gradients and the same
     * host arithmetic, so the losses bit for bit, with clipping off. The gradient norm is summed on the host by one and on
     * the device by the other (within 1e-6): its first GPU run, clipping on, found 5e-9 between them at step 1, which
     * the clip scaled every gradient by, and the losses 2.8e-6 apart by step 3.
     */
    @Test
    void aWorldOfOneWithTheStateOnTheHostTrainsAsTheHostOffloadedTrainer(@TempDir Path tmp) {
        worldOfOne(tmp, TrainerConfig.OptimizerSharding.GRADIENTS, TrainerConfig.OptimizerStatePlacement.HOST,
                TrainerConfig.OptimizerStatePrecision.FP32, 0.0, 1e-6, 0.0);
    }

    /**
     * ZeRO stage 3 of a full fine-tune through NCCL at one rank: each layer's trained bf16 weights kept in the
     * optimizer's part (the whole, at one rank) and all-gathered (a copy) into a slot as the layer is reached, the step
     * writing the part: stage 2's losses through NCCL, bit for bit, and its gradient norms within 1e-6 (clipping off:
     * the shards' layouts differ, cut at the layers, so a norm's sum of squares may add in another order), both
     * recomputing layers.
     */
    @Test
    void aWorldOfOneWithShardedTrainedWeightsTrainsAsStageTwo(@TempDir Path tmp) {
        Device gpu = Device.cuda(0);
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(gpu, new PrintStream(OutputStream.nullOutputStream()));
        TrainerConfig stage2 = d.trainerConfig().toBuilder().maxSteps(6).loggingSteps(1).save(TrainerConfig.SaveStrategy.NO, 0)
                .eval(TrainerConfig.SaveStrategy.STEPS, 3).checkpointing(Gemma3Model.Checkpointing.LAYERS).learningRate(1e-4).maxGradNorm(0)
                .optimizerSharding(TrainerConfig.OptimizerSharding.GRADIENTS).build();
        TrainerConfig stage3 = stage2.toBuilder().optimizerSharding(TrainerConfig.OptimizerSharding.PARAMETERS).build();
        List<StepRecord> two;
        List<StepRecord> three;
        try (NcclCollectives world = NcclCollectives.join(gpu, 0, 1, NcclCollectives.newUniqueId(gpu), Duration.ofMinutes(2))) {
            two = run(d, true, stage2, world, tmp.resolve("stage2"));
            three = run(d, true, stage3, world, tmp.resolve("stage3"));
        }
        assertEquals(two.size(), three.size());
        for (int i = 0; i < two.size(); i++) {
            System.out.printf(java.util.Locale.ROOT, "full fine-tune, step %d: loss %.9f / %.9f, gradient norm %.9f / %.9f%n", two.get(i).step(),
                    two.get(i).loss(), three.get(i).loss(), two.get(i).gradNorm(), three.get(i).gradNorm());
            assertEquals(two.get(i).loss(), three.get(i).loss(), 0.0, "loss at step " + two.get(i).step());
            // the norm is measured over shards laid out otherwise: its sums may group apart
            assertEquals(two.get(i).gradNorm(), three.get(i).gradNorm(), 1e-6 * two.get(i).gradNorm(), "gradient norm at step " + two.get(i).step());
        }
    }

    /**
     * ZeRO stage 3 beside weight offload (offload_param) through NCCL at one rank: each layer's frozen part (the whole,
     * at one rank) in pinned host memory, copied into a device staging buffer and all-gathered on NCCL's stream: the
     * plain trainer's numbers with weight offload (the layers copied from host memory), bit for bit.
     */
    @Test
    void aWorldOfOneWithShardedFrozenWeightsInHostMemoryTrainsAsWeightOffload(@TempDir Path tmp) {
        Device gpu = Device.cuda(0);
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(gpu, new PrintStream(OutputStream.nullOutputStream()));
        TrainerConfig offload = d.trainerConfig().toBuilder().maxSteps(6).loggingSteps(1).save(TrainerConfig.SaveStrategy.NO, 0)
                .eval(TrainerConfig.SaveStrategy.STEPS, 3).checkpointing(Gemma3Model.Checkpointing.LAYERS)
                .weightPlacement(TrainerConfig.WeightPlacement.HOST).build();
        List<StepRecord> plain = run(d, false, offload, null, tmp.resolve("plain"));
        List<StepRecord> three;
        try (NcclCollectives world = NcclCollectives.join(gpu, 0, 1, NcclCollectives.newUniqueId(gpu), Duration.ofMinutes(2))) {
            three = run(d, false, offload.toBuilder().optimizerSharding(TrainerConfig.OptimizerSharding.PARAMETERS).build(), world, tmp.resolve("stage3"));
        }
        assertEquals(plain.size(), three.size());
        for (int i = 0; i < plain.size(); i++) {
            System.out.printf(java.util.Locale.ROOT, "offload_param, step %d: loss %.9f / %.9f%n", plain.get(i).step(), plain.get(i).loss(), three.get(i).loss());
            assertEquals(plain.get(i).loss(), three.get(i).loss(), 0.0, "loss at step " + plain.get(i).step());
            assertEquals(plain.get(i).gradNorm(), three.get(i).gradNorm(), 0.0, "gradient norm at step " + plain.get(i).step());
        }
    }

    /**
     * ZeRO stage 2 of the 8-bit AdamW through NCCL at one rank: the shard (the whole layout) stepped by AdamW8bit's
     * kernel over its pieces: the plain trainer's AdamW8bit numbers, bit for bit.
     */
    @Test
    void aWorldOfOneWithShardedEightBitStateTrainsAsThePlainTrainerBitForBit(@TempDir Path tmp) {
        worldOfOne(tmp, TrainerConfig.OptimizerSharding.GRADIENTS, TrainerConfig.OptimizerStatePlacement.DEVICE,
                TrainerConfig.OptimizerStatePrecision.BLOCKWISE_8BIT, 0.0, 0.0, -1);
    }

    private static void worldOfOne(Path tmp, TrainerConfig.OptimizerSharding sharding) {
        worldOfOne(tmp, sharding, TrainerConfig.OptimizerStatePlacement.DEVICE, TrainerConfig.OptimizerStatePrecision.FP32, 0.0, 0.0, -1);
    }

    /**
     * The plain trainer against a world of one through NCCL: losses (and eval losses) within {@code tolerance} relative,
     * gradient norms within {@code normTolerance}; {@code maxGradNorm} for both (negative: the default setup's).
     */
    private static void worldOfOne(Path tmp, TrainerConfig.OptimizerSharding sharding, TrainerConfig.OptimizerStatePlacement state,
                                   TrainerConfig.OptimizerStatePrecision precision, double tolerance, double normTolerance, double maxGradNorm) {
        Device gpu = Device.cuda(0);
        TrainCommand.DefaultSetup d = TrainCommand.defaultSetup(gpu, new PrintStream(OutputStream.nullOutputStream()));
        Gemma3Model.Checkpointing checkpointing = sharding == TrainerConfig.OptimizerSharding.PARAMETERS
                ? Gemma3Model.Checkpointing.LAYERS : d.trainerConfig().checkpointing();
        List<StepRecord> plain = run(d, null, tmp.resolve("plain"), TrainerConfig.OptimizerSharding.NONE, checkpointing, state, precision, maxGradNorm);
        List<StepRecord> nccl;
        try (NcclCollectives world = NcclCollectives.join(gpu, 0, 1, NcclCollectives.newUniqueId(gpu), Duration.ofMinutes(2))) {
            nccl = run(d, world, tmp.resolve("nccl"), sharding, checkpointing, state, precision, maxGradNorm);
        }
        System.out.println("sharding " + sharding + ", optimizer state " + state);
        assertEquals(plain.size(), nccl.size());
        for (int i = 0; i < plain.size(); i++) {
            System.out.printf(java.util.Locale.ROOT, "step %d: loss %.9f / %.9f, gradient norm %.9f / %.9f%n", plain.get(i).step(),
                    plain.get(i).loss(), nccl.get(i).loss(), plain.get(i).gradNorm(), nccl.get(i).gradNorm());
            assertEquals(plain.get(i).loss(), nccl.get(i).loss(), tolerance * Math.abs(plain.get(i).loss()), "loss at step " + plain.get(i).step());
            assertEquals(plain.get(i).gradNorm(), nccl.get(i).gradNorm(), normTolerance * Math.abs(plain.get(i).gradNorm()),
                    "gradient norm at step " + plain.get(i).step());
            assertEquals(plain.get(i).hasEval(), nccl.get(i).hasEval(), "an eval at step " + plain.get(i).step());
            if (plain.get(i).hasEval()) {
                System.out.printf(java.util.Locale.ROOT, "step %d: eval loss %.9f / %.9f%n", plain.get(i).step(), plain.get(i).evalLoss(),
                        nccl.get(i).evalLoss());
                assertEquals(plain.get(i).evalLoss(), nccl.get(i).evalLoss(), tolerance * Math.abs(plain.get(i).evalLoss()),
                        "eval loss at step " + plain.get(i).step());
            }
        }
        assertEquals(2, plain.stream().filter(StepRecord::hasEval).count(), "evals at steps 3 and 6");
    }
}
