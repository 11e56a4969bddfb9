package dev.jtune.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --nproc_per_node} from the command line: the launcher starts real worker processes with the same arguments;
 * each wants the GPU its LOCAL_RANK names, so on a machine without enough GPUs a worker stops with that reason in its
 * log and the launcher stops the rest and exits non-zero, naming the rank. The flags' contradictions are refused first.
 */
class DataParallelCliTest {
    @Test
    void workersWithoutTheirGpusStopTheRunWithTheReasonInTheirLogs(@TempDir Path tmp) throws Exception {
        Path model = CliFixtures.smallModel(tmp.resolve("model"));
        Path data = CliFixtures.data(tmp.resolve("d.jsonl"), 4, "");
        Path out = tmp.resolve("out");
        CliFixtures.Run r = CliFixtures.run("--model_path", model.toString(), "--data_path", data.toString(), "--output_dir", out.toString(),
                "--lora_enable", "True", "--freeze_llm", "True", "--max_steps", "2", "--nproc_per_node", "2", "--master_port", "29611");
        assertNotEquals(0, r.rc(), r.all());
        assertTrue(r.out().contains("started ranks 0-1 of 2 on this machine; logs in " + out.resolve("logs")), r.all());
        assertTrue(Pattern.compile("jtune: rank [01] exited with status 1 \\(its log: .*rank-[01]\\.log\\); stopping the other ranks")
                .matcher(r.err()).find(), r.all());
        String logs = Files.readString(out.resolve("logs/rank-0.log")) + Files.readString(out.resolve("logs/rank-1.log"));
        assertTrue(logs.contains("needs cuda:"), logs);
        assertTrue(logs.contains("data parallel runs one worker per GPU through NCCL"), logs);
    }

    @Test
    void contradictionsAreRefusedBeforeAnyWorkerStarts(@TempDir Path tmp) throws Exception {
        Path model = CliFixtures.smallModel(tmp.resolve("model"));
        Path data = CliFixtures.data(tmp.resolve("d.jsonl"), 4, "");
        CliFixtures.Run r = CliFixtures.run("--model_path", model.toString(), "--data_path", data.toString(), "--output_dir",
                tmp.resolve("out").toString(), "--nnodes", "2", "--node_rank", "2", "--offload_optimizer", "cpu", "--nproc_per_node", "2");
        assertEquals(2, r.rc(), r.all());
        assertTrue(r.err().contains("--node_rank 2 must be below --nnodes 2"), r.all());
        assertTrue(r.err().contains("--nnodes 2 needs --master_addr"), r.all());
        assertTrue(r.err().contains("--nproc_per_node x --nnodes over 1 with --offload_optimizer cpu: " + dev.jtune.train.loop.TrainerConfig.HOST_OPTIMIZER_NOT_WITH_DATA_PARALLEL), r.all());
        assertTrue(!Files.exists(tmp.resolve("out/logs")), "no worker was started");
    }

    /** A worker's planner may not move the optimizer to the host, which the trainer refuses beside data parallel. */
    @Test
    void aWorkersPlannerKeepsTheOptimizerOnTheGpu() {
        dev.jtune.train.args.GivenFlags none = dev.jtune.train.args.GivenFlags.none();
        assertTrue(TrainCommand.plannerGiven(none, dev.jtune.train.dist.DistEnv.SINGLE).origins().isEmpty(), "alone: nothing added");
        dev.jtune.train.dist.DistEnv rank1 = new dev.jtune.train.dist.DistEnv(1, 2, 1, 2, "127.0.0.1", 29500);
        assertTrue(TrainCommand.plannerGiven(none, rank1).contains(dev.jtune.train.args.Flag.OFFLOAD_OPTIMIZER));
    }

    /**
     * A --deepspeed ZeRO stage beside data parallel shards the optimizer state (stage 1) and the gradients (stage 2);
     * stage 3 the layers' weights too, with recomputation (else stage 2, saying why), an optimizer the sharding is not built for says so; alone (one GPU) a stage needs no word and shards nothing.
     */
    @Test
    void aZeroStageBesideDataParallelShardsTheOptimizerState(@TempDir Path tmp) throws Exception {
        Path model = CliFixtures.smallModel(tmp.resolve("model"));
        Path data = CliFixtures.data(tmp.resolve("d.jsonl"), 4, "");
        dev.jtune.train.args.TrainArgs a = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path", data.toString(),
                "--output_dir", tmp.resolve("out").toString(), "--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2}}");
        dev.jtune.train.dist.DistEnv rank0 = new dev.jtune.train.dist.DistEnv(0, 2, 0, 2, "127.0.0.1", 29500);
        assertTrue(TrainCommand.dataParallelWarnings(a, rank0).isEmpty(), "stage 2 is built");
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.GRADIENTS, TrainCommand.sharding(a, rank0.worldSize()));
        String stage3Config = "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 3}}";
        // without recomputation stage 3 cannot gather the layers again: stage 2, and the warning says why
        dev.jtune.train.args.TrainArgs stage3 = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--deepspeed", stage3Config);
        List<String> w = TrainCommand.dataParallelWarnings(stage3, rank0);
        assertEquals(1, w.size(), w.toString());
        assertEquals("zero_optimization.stage 3 shards the layers' weights only with --gradient_checkpointing (each layer is gathered"
                + " again for its recomputation): the weights stay whole on every GPU; the optimizer state and the gradients are"
                + " sharded over the 2 ranks (stage 2)", w.getFirst());
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.GRADIENTS, TrainCommand.sharding(stage3, rank0.worldSize()));
        // with it, a LoRA run shards the frozen base, a full fine-tune its trained layer weights (no word)
        dev.jtune.train.args.TrainArgs lora3 = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--deepspeed", stage3Config, "--gradient_checkpointing",
                "--lora_enable", "--freeze_llm");
        assertTrue(TrainCommand.dataParallelWarnings(lora3, rank0).isEmpty(), TrainCommand.dataParallelWarnings(lora3, rank0).toString());
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.PARAMETERS, TrainCommand.sharding(lora3, rank0.worldSize()));
        dev.jtune.train.args.TrainArgs full3 = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--deepspeed", stage3Config, "--gradient_checkpointing");
        assertTrue(TrainCommand.dataParallelWarnings(full3, rank0).isEmpty(), TrainCommand.dataParallelWarnings(full3, rank0).toString());
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.PARAMETERS, TrainCommand.sharding(full3, rank0.worldSize()));
        // beside offload_param cpu a LoRA run keeps its frozen parts in host memory (no word); a full fine-tune's trained
        // layer parts stay on the GPUs beside their optimizer parts, and it is told so
        dev.jtune.train.args.TrainArgs loraOffload = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--deepspeed", stage3Config, "--gradient_checkpointing",
                "--lora_enable", "--freeze_llm", "--offload_param", "cpu");
        assertTrue(TrainCommand.dataParallelWarnings(loraOffload, rank0).isEmpty(), TrainCommand.dataParallelWarnings(loraOffload, rank0).toString());
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.PARAMETERS, TrainCommand.sharding(loraOffload, rank0.worldSize()));
        dev.jtune.train.args.TrainArgs fullOffload = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--deepspeed", stage3Config, "--gradient_checkpointing",
                "--offload_param", "cpu", "--offload_optimizer", "cpu");
        assertEquals(List.of("zero_optimization.stage 3 with offload_param cpu: a full fine-tune's layer weights are sharded over the GPUs"
                + " (each rank's part beside its gradient and optimizer parts), not kept in host memory; frozen weights' parts are"),
                TrainCommand.dataParallelWarnings(fullOffload, rank0));
        assertTrue(TrainCommand.dataParallelWarnings(a, dev.jtune.train.dist.DistEnv.SINGLE).isEmpty());
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.NONE, TrainCommand.sharding(a, dev.jtune.train.dist.DistEnv.SINGLE.worldSize()));
        dev.jtune.train.args.TrainArgs stage1 = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 1}}");
        assertTrue(TrainCommand.dataParallelWarnings(stage1, rank0).isEmpty(), "stage 1 is what jtune shards");
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.STATE, TrainCommand.sharding(stage1, rank0.worldSize()));
        dev.jtune.train.args.TrainArgs eightBit = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--optim", "adamw_8bit", "--deepspeed",
                "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 1}}");
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.STATE, TrainCommand.sharding(eightBit, rank0.worldSize()),
                "the 8-bit state shards too");
        dev.jtune.train.args.TrainArgs paged = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--optim", "paged_adamw_32bit", "--deepspeed",
                "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 1}}");
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.STATE, TrainCommand.sharding(paged, rank0.worldSize()), "the paged fp32 state shards too");
        assertTrue(TrainCommand.dataParallelWarnings(eightBit, rank0).isEmpty(), TrainCommand.dataParallelWarnings(eightBit, rank0).toString());
        // 8-bit moments on the host are not sharded (the host step keeps fp32 ones): plain data parallel, refused with the
        // host optimizer; the warning says why first
        dev.jtune.train.args.TrainArgs eightBitHost = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--optim", "adamw_8bit", "--offload_optimizer", "cpu",
                "--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 1}}");
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.NONE, TrainCommand.sharding(eightBitHost, rank0.worldSize()));
        assertTrue(TrainCommand.dataParallelWarnings(eightBitHost, rank0).getFirst().contains("its fp32 state on the host"),
                TrainCommand.dataParallelWarnings(eightBitHost, rank0).toString());
        // ZeRO-Offload: the config's offload_optimizer cpu beside stage 2 shards the host state (each rank steps its part on its cores)
        dev.jtune.train.args.TrainArgs offload = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--nproc_per_node", "2", "--deepspeed",
                "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2, \"offload_optimizer\": {\"device\": \"cpu\"}}}");
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerStatePlacement.HOST, offload.optimizerStatePlacement());
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.GRADIENTS, TrainCommand.sharding(offload, rank0.worldSize()));
        assertTrue(TrainCommand.dataParallelWarnings(offload, rank0).isEmpty(), TrainCommand.dataParallelWarnings(offload, rank0).toString());
        // the delayed host step shards too (each rank's update runs beside the next step)
        dev.jtune.train.args.TrainArgs delayed = dev.jtune.train.args.TrainArgs.parse("--model_path", model.toString(), "--data_path",
                data.toString(), "--output_dir", tmp.resolve("out").toString(), "--offload_optimizer", "cpu", "--delayed_optimizer_step",
                "--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 2}}");
        assertEquals(dev.jtune.train.loop.TrainerConfig.OptimizerSharding.GRADIENTS, TrainCommand.sharding(delayed, rank0.worldSize()));
        assertTrue(TrainCommand.dataParallelWarnings(delayed, rank0).isEmpty(), TrainCommand.dataParallelWarnings(delayed, rank0).toString());
    }
}
