package dev.jtune.train;

import dev.jtune.engine.Device;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.train.args.CommandLine;
import dev.jtune.train.args.OffloadOptimizer;
import dev.jtune.train.args.TrainArgs;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * {@code jtune plan <the flags of a run>}: the run's memory plan without training, from the model's config.json
 * alone ({@code --model_path DIR} holding it, weights or not, or {@code --model_name_or_path} / {@code --model_id}
 * naming a built-in configuration): the {@link Planner}'s choice against {@code --max_memory} (else a GPU's free
 * memory), the predicted step by category ({@link MemoryPlanner}, on the meta device) and the line saying what was
 * chosen and why; when nothing fits, exit 1 with what was tried and which single changes would fit. A run prints
 * the same plan at its start.
 */
final class PlanCommand {
    private PlanCommand() {
    }

    /** Configurations shipped in the jar that {@code --model_name_or_path} may name. */
    static final Set<String> BUILT_IN = Set.of("gemma-3-270m", "gemma-3-1b-it", "gemma-3-4b-it");

    static final String USAGE = """
            usage: jtune plan [TRAINING FLAGS...]

            The memory plan of the run the same flags would start, without loading a weight: the predicted peak of one
            training step by category (weights, NF4 weights, adapters, gradients, optimizer state, master weights,
            activations, workspace; device and pinned host), from the trainer's own step on the meta device (shapes
            and allocations only). The model needs only its config.json: --model_path DIR (weights not needed), or
            --model_name_or_path NAME, a built-in configuration (gemma-3-270m, gemma-3-1b-it, gemma-3-4b-it) or a model
            in the HF cache. --data_path is not needed; each sequence is --max_seq_length tokens long. Plans for the
            GPU: --bf16 decides the dtype.

            The budget is --max_memory SIZE (16GB = 16e9 bytes, 16GiB = 16 * 2^30), else the GPU's free memory, else
            none (no GPU: the configuration as given). Against it the planner chooses the fastest configuration that
            fits, filling only what the flags (command line, --config, --preset, --deepspeed) left open: gradient
            checkpointing (none, --checkpointing_granularity half, layer) and, for full fine-tuning, --offload_optimizer
            cpu; by a fixed cost rule (half +8%, layer +23% of a step; offload +10% at 65,536 tokens a step, more with
            fewer). It never changes the batch, accumulation, sequence length, rank, bits or optimizer. The line
            "chosen: ..." says what it set and why. When nothing fits, the exit status is 1 and the message lists what
            was tried, what was kept as given, and which single changes (a shorter sequence, a smaller micro-batch or
            rank, 4 bits, offload, checkpointing, 8-bit or paged optimizer state) would fit, with their bytes.
            """;

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (Main.wantsHelp(args)) {
            out.print(USAGE);
            return 0;
        }
        String builtIn = null;
        List<String> rest = new ArrayList<>(Arrays.asList(args));
        if (!rest.contains("--model_path") && rest.stream().noneMatch(s -> s.startsWith("--model_path="))) {
            for (int i = 0; i < rest.size(); i++) {
                String s = rest.get(i);
                boolean flag = s.equals("--model_name_or_path") || s.equals("--model_id");
                if (flag && i + 1 < rest.size() && BUILT_IN.contains(rest.get(i + 1))) {
                    builtIn = rest.get(i + 1);
                    rest.subList(i, i + 2).clear();
                    break;
                }
                int eq = s.indexOf('=');
                if (eq > 0 && (s.startsWith("--model_name_or_path=") || s.startsWith("--model_id=")) && BUILT_IN.contains(s.substring(eq + 1))) {
                    builtIn = s.substring(eq + 1);
                    rest.remove(i);
                    break;
                }
            }
        }
        CommandLine.Train t = switch (CommandLine.parse(rest.toArray(String[]::new), System.getenv(), CommandLine.Purpose.PLAN)) {
            case CommandLine.Help h -> {
                out.print(USAGE);
                yield null;
            }
            case CommandLine.Train train -> train;
        };
        if (t == null) {
            return 0;
        }
        t.warnings().forEach(w -> err.println("jtune: warning: " + w));
        TrainArgs a = t.args();
        Gemma3Config config;
        Optional<Gemma3VisionConfig> vision;
        String name;
        if (builtIn != null) {
            config = Gemma3Config.builtIn(builtIn);
            vision = Optional.empty(); // a built-in name plans its text tower (Gemma3Config.builtIn); a checkpoint directory says itself
            name = builtIn + " (built-in configuration)";
        } else if (a.modelPath() != null) {
            config = Gemma3Config.read(a.modelPath());
            vision = Gemma3VisionConfig.read(a.modelPath());
            name = a.modelId() != null ? a.modelId() : a.modelPath().toString();
        } else {
            throw new dev.jtune.train.args.ArgsException("a model is required: --model_path DIR (holding config.json; weights are not needed)"
                    + " or --model_name_or_path NAME (built in: " + String.join(", ", BUILT_IN.stream().sorted().toList()) + "; or a model in the HF cache)");
        }
        TrainCommand.refuseWhatTheTrainerDoesNotRunYet(a, TrainCommand.config(a)); // a plan of a run that cannot run helps nobody
        long started = System.nanoTime();
        Planner.Budget budget = Planner.Budget.forRun(a, TrainCommand.device(a.device()));
        if (vision.isPresent()) { // no data to count images in: the seed's usual record, one image per sequence
            out.println("image-text model: planned with the vision tower and projector, and one image in each sequence");
        }
        int ranks = TrainCommand.layout(a).worldSize();
        if (ranks > 1) { // every GPU of a data-parallel run holds the same; with ZeRO its shard of the state (and gradients)
            out.println("planned for one of the " + ranks + " ranks (--nproc_per_node x --nnodes)" + switch (TrainCommand.sharding(a, ranks)) {
                case NONE -> "";
                case STATE -> ", ZeRO stage 1: the optimizer state sharded";
                case GRADIENTS -> ", ZeRO stage 2: the optimizer state and the gradients sharded";
                case PARAMETERS -> ", ZeRO stage 3: the optimizer state, the gradients and the layers' weights sharded"
                        + (a.offloadParam() == dev.jtune.train.args.OffloadParam.CPU ? " (each rank's part of the frozen ones in its host memory)" : "");
            });
        }
        Planner.Plan plan = Planner.plan(new MemoryPlanner.Model(config, vision, vision.isPresent() ? 1 : 0).inWorldOf(ranks), a, t.given(),
                budget, Device.Kind.CUDA);
        double seconds = (System.nanoTime() - started) / 1e9;
        out.println("jtune plan: " + describe(plan.args(), config, name, Device.Kind.CUDA));
        out.print(plan.prediction().report().fullTable());
        long bytes = plan.prediction().deviceBytes();
        out.printf(Locale.ROOT, "planned on the meta device in %.1f s; the device must hold %,d bytes (%.2f GiB)%n",
                seconds, bytes, bytes / (double) (1L << 30));
        return switch (plan) {
            case Planner.Chosen c -> {
                out.println(c.line());
                yield 0;
            }
            case Planner.Refused r -> throw new CommandException(r.message());
        };
    }

    /** The run the plan is for, on {@code target}, in one line. */
    static String describe(TrainArgs a, Gemma3Config c, String name, Device.Kind target) {
        String training = a.loraEnable() ? (a.bits() == 4 ? "QLoRA (NF4 base)" : "LoRA") + " rank " + a.loraRank() : "full fine-tuning";
        long tokens = (long) a.perDeviceTrainBatchSize() * a.maxSeqLength();
        String tiles = !a.tiledMlp() ? "" : ", tiled MLP (" + (a.tiledMlpNumShards() > 0 ? a.tiledMlpNumShards()
                : dev.jtune.gemma.model.Gemma3Model.MlpTiling.autoShards(tokens, c, MemoryPlanner.dtype(a, target))) + " tiles)";
        return String.format(Locale.ROOT, "%s (%d layers, hidden %d, vocabulary %,d), %s in %s, %d x %d tokens per micro-batch, %s%s, optimizer %s%s",
                name, c.numHiddenLayers(), c.hiddenSize(), c.vocabSize(), training,
                target == Device.Kind.CUDA && a.bf16() ? "bf16" : "fp32",
                a.perDeviceTrainBatchSize(), a.maxSeqLength(),
                a.gradientCheckpointing() ? "gradient checkpointing (" + a.checkpointingGranularity().name().toLowerCase(Locale.ROOT) + ")" : "no gradient checkpointing",
                tiles, a.optim().flagValue(), (a.offloadOptimizer() == OffloadOptimizer.CPU ? " offloaded to the host" : "")
                        + (a.activationPlacement() == dev.jtune.train.loop.TrainerConfig.ActivationPlacement.HOST ? ", activations offloaded" : "")
                        + (a.offloadParam() == dev.jtune.train.args.OffloadParam.CPU ? ", layer weights offloaded (two layers on the device)" : ""));
    }
}
