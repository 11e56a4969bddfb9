package dev.jtune.train;

import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.train.args.CommandLine;
import dev.jtune.train.args.MemorySize;
import dev.jtune.train.args.OffloadOptimizer;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.loop.TrainerConfig;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code jtune plan <the flags of a run>}: the predicted peak memory of one training step by category, from the
 * model's config.json alone ({@code --model_path DIR} holding it, weights or not, or {@code --model_name_or_path} /
 * {@code --model_id} naming a built-in configuration), computed by {@link MemoryPlanner} on the meta device. With
 * {@code --max_memory} it says whether the step fits and, when it does not, exits 1 naming what would reduce it.
 * It chooses nothing yet.
 */
final class PlanCommand {
    private PlanCommand() {
    }

    /** Configurations shipped in the jar that {@code --model_name_or_path} may name. */
    static final Set<String> BUILT_IN = Set.of("gemma-3-270m", "gemma-3-1b-it", "gemma-3-4b-it");

    static final String USAGE = """
            usage: jtune plan [TRAINING FLAGS...]

            Predicts the peak memory of one training step by category (weights, NF4 weights, adapters, gradients,
            optimizer state, master weights, activations, workspace; device and pinned host) for the run the same
            flags would start, without loading a weight: the trainer's own step runs on the meta device (shapes and
            allocations only). The model needs only its config.json: --model_path DIR (weights not needed), or
            --model_name_or_path NAME, a built-in configuration (gemma-3-270m, gemma-3-1b-it, gemma-3-4b-it) or a model
            in the HF cache. --data_path is not needed; each sequence is --max_seq_length tokens long.
            --max_memory SIZE (16GB = 16e9 bytes, 16GiB = 16 * 2^30): whether the step fits; when it does not, the
            exit status is 1 and the message lists what would reduce the peak. Plans for the GPU: --bf16 decides the dtype.
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
        String name;
        if (builtIn != null) {
            config = Gemma3Config.builtIn(builtIn);
            name = builtIn + " (built-in configuration)";
        } else if (a.modelPath() != null) {
            config = Gemma3Config.read(a.modelPath());
            name = a.modelId() != null ? a.modelId() : a.modelPath().toString();
        } else {
            throw new dev.jtune.train.args.ArgsException("a model is required: --model_path DIR (holding config.json; weights are not needed)"
                    + " or --model_name_or_path NAME (built in: " + String.join(", ", BUILT_IN.stream().sorted().toList()) + "; or a model in the HF cache)");
        }
        long started = System.nanoTime();
        MemoryPlanner.Prediction p = MemoryPlanner.predict(config, a);
        double seconds = (System.nanoTime() - started) / 1e9;
        out.println("jtune plan: " + describe(a, config, name));
        out.print(p.report().fullTable());
        out.printf(Locale.ROOT, "planned on the meta device in %.1f s; the device must hold %,d bytes (%.2f GiB)%n",
                seconds, p.deviceBytes(), p.deviceBytes() / (double) (1L << 30));
        MemorySize max = a.maxMemory();
        if (max == null) {
            out.println("no --max_memory given: nothing to compare with");
            return 0;
        }
        if (p.deviceBytes() <= max.bytes()) {
            out.printf(Locale.ROOT, "fits --max_memory %s: %.2f GiB to spare%n", max.describe(), (max.bytes() - p.deviceBytes()) / (double) (1L << 30));
            return 0;
        }
        throw new CommandException(String.format(Locale.ROOT, "the step does not fit --max_memory %s: it needs %.2f GiB. What would reduce it: %s",
                max.describe(), p.deviceBytes() / (double) (1L << 30), String.join("; ", reductions(a))));
    }

    /** The run the plan is for, in one line. */
    private static String describe(TrainArgs a, Gemma3Config c, String name) {
        String training = a.loraEnable() ? (a.bits() == 4 ? "QLoRA (NF4 base)" : "LoRA") + " rank " + a.loraRank() : "full fine-tuning";
        return String.format(Locale.ROOT, "%s (%d layers, hidden %d, vocabulary %,d), %s in %s, %d x %d tokens per micro-batch, %s, optimizer %s%s",
                name, c.numHiddenLayers(), c.hiddenSize(), c.vocabSize(), training, a.bf16() ? "bf16" : "fp32",
                a.perDeviceTrainBatchSize(), a.maxSeqLength(),
                a.gradientCheckpointing() ? "gradient checkpointing (" + a.checkpointingGranularity().name().toLowerCase(Locale.ROOT) + ")" : "no gradient checkpointing",
                a.optim().flagValue(), a.offloadOptimizer() == OffloadOptimizer.CPU ? " offloaded to the host" : "");
    }

    /** What the user could change to lower the step's peak, given what the arguments already ask for. */
    static List<String> reductions(TrainArgs a) {
        List<String> r = new ArrayList<>();
        r.add("a shorter sequence (--max_seq_length " + Math.max(2, a.maxSeqLength() / 2) + ")");
        if (a.perDeviceTrainBatchSize() > 1) {
            r.add("fewer sequences per micro-batch (--per_device_train_batch_size 1, with --gradient_accumulation_steps for the same step)");
        }
        if (!a.gradientCheckpointing()) {
            r.add("gradient checkpointing (--gradient_checkpointing)");
        }
        if (!a.loraEnable()) {
            r.add("LoRA instead of full fine-tuning (--lora_enable --freeze_llm), with a 4-bit base (--bits 4)");
        } else {
            if (a.loraRank() > 8) {
                r.add("a smaller rank (--lora_rank " + a.loraRank() / 2 + ")");
            }
            if (a.bits() != 4) {
                r.add("4 bits for the frozen base (--bits 4, QLoRA)");
            }
        }
        TrainerConfig.OptimizerStatePlacement placement = a.optimizerStatePlacement();
        if (placement == TrainerConfig.OptimizerStatePlacement.DEVICE) {
            r.add("optimizer offload (--offload_optimizer cpu: master weights and moments in host memory)");
            r.add("paged optimizer state in host memory (--optim paged_adamw_8bit or paged_adamw_32bit)");
            if (a.optim().statePrecision() == TrainerConfig.OptimizerStatePrecision.FP32) {
                r.add("8-bit optimizer state (--optim adamw_bnb_8bit)");
            }
        }
        return r;
    }
}
