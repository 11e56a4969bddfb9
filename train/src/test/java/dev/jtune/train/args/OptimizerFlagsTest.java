package dev.jtune.train.args;

import dev.jtune.train.loop.TrainerConfig.OptimizerStatePlacement;
import dev.jtune.train.loop.TrainerConfig.OptimizerStatePrecision;
import dev.jtune.train.loop.TrainerConfig.OptimizerStepTiming;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --optim with HF's names, --offload_optimizer and --delayed_optimizer_step: what each says about the optimizer state. */
class OptimizerFlagsTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    private record State(OptimizerStatePrecision precision, OptimizerStatePlacement placement) {
    }

    @Test
    void everyHfNameSaysHowPreciseTheStateIsAndWhereItLives() {
        Map<String, State> expected = Map.of(
                "adamw_torch", new State(OptimizerStatePrecision.FP32, OptimizerStatePlacement.DEVICE),
                "adamw_torch_fused", new State(OptimizerStatePrecision.FP32, OptimizerStatePlacement.DEVICE),
                "adamw_hf", new State(OptimizerStatePrecision.FP32, OptimizerStatePlacement.DEVICE),
                "adamw_bnb_8bit", new State(OptimizerStatePrecision.BLOCKWISE_8BIT, OptimizerStatePlacement.DEVICE),
                "adamw_8bit", new State(OptimizerStatePrecision.BLOCKWISE_8BIT, OptimizerStatePlacement.DEVICE),
                "paged_adamw_8bit", new State(OptimizerStatePrecision.BLOCKWISE_8BIT, OptimizerStatePlacement.PAGED_HOST),
                "paged_adamw_32bit", new State(OptimizerStatePrecision.FP32, OptimizerStatePlacement.PAGED_HOST));
        assertEquals(Optim.values().length - 1, expected.size(), "every AdamW name is covered");
        expected.forEach((name, state) -> {
            TrainArgs a = fx.parse("--optim", name);
            assertEquals(name, a.optim().flagValue());
            assertTrue(a.optim().isAdamW(), name);
            assertEquals(state, new State(a.optim().statePrecision(), a.optimizerStatePlacement()), name);
            assertEquals(OptimizerStepTiming.IMMEDIATE, a.optimizerStepTiming(), name);
        });
        assertEquals(Optim.ADAMW_BNB_8BIT, fx.parse("--optim", "ADAMW_BNB_8BIT").optim()); // any case, as the other choices
    }

    @Test
    void offloadMovesAnyAdamWToTheHostAndTheDelayedStepNeedsIt() {
        TrainArgs host = fx.parse("--offload_optimizer", "cpu");
        assertEquals(OptimizerStatePlacement.HOST, host.optimizerStatePlacement());
        assertEquals(OptimizerStatePrecision.FP32, host.optim().statePrecision());
        TrainArgs host8 = fx.parse("--offload_optimizer", "cpu", "--optim", "adamw_8bit", "--delayed_optimizer_step");
        assertEquals(OptimizerStatePlacement.HOST, host8.optimizerStatePlacement());
        assertEquals(OptimizerStatePrecision.BLOCKWISE_8BIT, host8.optim().statePrecision());
        assertEquals(OptimizerStepTiming.DELAYED_ONE_STEP, host8.optimizerStepTiming());
        assertEquals(OffloadOptimizer.NONE, fx.parse().offloadOptimizer());
        assertEquals(false, fx.parse().delayedOptimizerStep());
    }

    @Test
    void contradictoryChoicesAreNamed() {
        assertEquals(java.util.List.of("--delayed_optimizer_step needs --offload_optimizer cpu: only a host update can overlap the next step"),
                fx.error("--delayed_optimizer_step").problems());
        ArgsException paged = fx.error("--optim", "paged_adamw_32bit", "--offload_optimizer", "cpu");
        assertEquals(1, paged.problems().size(), paged.getMessage());
        assertTrue(paged.getMessage().contains("--optim paged_adamw_32bit keeps the state in host memory the GPU maps and updates it on"
                + " the GPU, --offload_optimizer cpu updates it on the host: choose one"), paged.getMessage());
        ArgsException sgd = fx.error("--optim", "sgd", "--offload_optimizer", "cpu");
        assertTrue(sgd.getMessage().contains("--offload_optimizer cpu is host-offloaded AdamW; --optim sgd has no host update"), sgd.getMessage());
        ArgsException nvme = fx.error("--offload_optimizer", "nvme");
        assertTrue(nvme.getMessage().contains("--offload_optimizer nvme is refused: NVMe offload is not built"), nvme.getMessage());
    }

    @Test
    void helpDescribesEachChoice() {
        String help = CommandLine.help();
        for (String s : java.util.List.of("adamw_bnb_8bit (alias adamw_8bit): bitsandbytes' blockwise 8-bit AdamW",
                "paged_adamw_8bit, paged_adamw_32bit: that 8-bit or fp32 state in pinned host memory the GPU maps",
                "--offload_optimizer {none|cpu}", "host-offloaded AdamW (ZeRO-Offload on one GPU)",
                "--delayed_optimizer_step BOOL", "Changes the arithmetic", "--deepspeed FILE|JSON",
                "On one GPU the ZeRO stage (0-3) partitions nothing and decides only offload")) {
            assertTrue(help.contains(s), s + " in\n" + help);
        }
    }
}
