package dev.jtune.train;

import dev.jtune.JtuneException;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.train.args.ArgsException;
import dev.jtune.train.args.CommandLine;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.dist.DistEnv;
import dev.jtune.train.dist.Launcher;
import dev.jtune.train.report.ErrorChain;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * jtune's command line: with no arguments the embedded default run; {@code demo} lists devices and runs a matmul
 * on each backend; {@code generate} samples text from a checkpoint (optionally with a peft adapter); {@code merge}
 * folds an adapter into its base; {@code help} explains them; otherwise HF TrainingArguments-style flags train
 * (see {@code --help}).
 */
public final class Main {
    private Main() {
    }

    /** The flags every command takes, anywhere on its line; {@link #run} takes them out before the command sees it. */
    static final String GLOBAL_FLAGS = """
            Flags of every command:
              --debug                        with an error, print its stack trace too (an error is otherwise one
                                             line: what failed, its causes, and a hint where there is one)
            """;

    /** {@code --debug}: a reported error also prints its stack trace. */
    static final String DEBUG = "--debug";

    static final String DEMO_USAGE = """
            usage: jtune demo [--size N] [--debug]

            Lists the devices (the cpu, and each GPU jtune can use, or why none) and runs a bf16 matmul of N x N
            matrices (default 512) on each backend, with its time and its difference to the cpu's result.
            """;

    /** The overview {@code jtune help} prints. */
    static final String OVERVIEW = """
            usage: jtune [COMMAND] [ARGS...]

            Commands:
              jtune                          the embedded default: QLoRA on a small random Gemma 3 over bundled
                                             conversations, written to jtune-output/
              jtune --FLAG VALUE...          train: HF TrainingArguments-style flags (jtune help train lists them)
              jtune generate ...             generate text from a model, optionally with a peft adapter on top
              jtune merge ...                fold a peft adapter into its base model and write an HF checkpoint
              jtune plan --FLAG VALUE...     a run's memory plan: what fits the device, its step's peak by category
              jtune demo [--size N]          list the devices and run a bf16 matmul on each backend
              jtune help [COMMAND]           this text, or a command's usage (also: jtune COMMAND --help)
            """ + "\n" + GLOBAL_FLAGS;

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs the command line; returns the exit status (0 ok, 1 failure, 2 bad arguments). */
    static int run(String[] commandLine, PrintStream out, PrintStream err) {
        boolean debug = Arrays.asList(commandLine).contains(DEBUG);
        String[] args = Arrays.stream(commandLine).filter(a -> !a.equals(DEBUG)).toArray(String[]::new);
        try {
            if (args.length == 0) {
                TrainCommand.runDefault(Path.of("jtune-output"), out);
                return 0;
            }
            String[] rest = Arrays.copyOfRange(args, 1, args.length);
            return switch (args[0]) {
                case "help" -> help(rest, out, err);
                case "demo" -> demo(rest, out, err);
                case "generate" -> GenerateCommand.run(rest, out, err);
                case "merge" -> MergeCommand.run(rest, out, err);
                case "plan" -> PlanCommand.run(rest, out, err);
                default -> train(args, out, err);
            };
        } catch (RuntimeException e) {
            return failure(e, err, debug);
        }
    }

    /**
     * A failure the user can act on, a {@link JtuneException} (or a wrapper whose causes hold one), is printed as
     * one line, {@code jtune: message: cause: ...; hint: ...} ({@link ErrorChain}), with its stack trace after it
     * when {@code debug}, and gives the exit status (2 bad arguments, 1 otherwise). Anything else is a bug and is
     * rethrown with its stack trace.
     */
    static int failure(RuntimeException e, PrintStream err, boolean debug) {
        if (!isReported(e)) {
            throw e;
        }
        err.println("jtune: " + ErrorChain.describe(e));
        if (debug) {
            e.printStackTrace(err);
        }
        return e instanceof ArgsException ? 2 : 1;
    }

    static int failure(RuntimeException e, PrintStream err) {
        return failure(e, err, false);
    }

    /** Whether {@code e} or one of its causes is a JtuneException (wrappers such as CompletionException keep it). */
    static boolean isReported(Throwable e) {
        java.util.Set<Throwable> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Throwable c = e; c != null && seen.add(c); c = c.getCause()) {
            if (c instanceof JtuneException) {
                return true;
            }
        }
        return false;
    }

    /** {@code jtune help [COMMAND]}. */
    private static int help(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || wantsHelp(args) || args[0].equals("help")) {
            out.print(OVERVIEW);
            return 0;
        }
        if (args.length > 1) {
            err.println("jtune help: one command at a time (jtune help COMMAND)");
            return 2;
        }
        switch (args[0]) {
            case "train" -> out.print(CommandLine.help() + "\n" + GLOBAL_FLAGS);
            case "generate" -> out.print(GenerateCommand.USAGE);
            case "merge" -> out.print(MergeCommand.USAGE);
            case "plan" -> out.print(PlanCommand.USAGE);
            case "demo" -> out.print(DEMO_USAGE);
            default -> {
                err.println("jtune help: unknown command '" + args[0] + "' (commands: train, plan, generate, merge, demo, help)");
                return 2;
            }
        }
        return 0;
    }

    /** Whether {@code args} asks for a command's usage. */
    static boolean wantsHelp(String[] args) {
        for (String a : args) {
            if (a.equals("--help") || a.equals("-h")) {
                return true;
            }
        }
        return false;
    }

    private static int train(String[] args, PrintStream out, PrintStream err) {
        switch (CommandLine.parse(args)) {
            case CommandLine.Help h -> {
                out.print(h.text());
                out.println();
                out.println("Other commands (jtune help COMMAND, or jtune COMMAND --help, for each one's usage):");
                out.println("  jtune                          the embedded default: train a small random Gemma 3 on bundled conversations");
                out.println("  jtune generate [--model_path DIR] [--adapter_path DIR] --prompt TEXT [--chat] ...");
                out.println("                                 generate text, streaming tokens (a peft adapter applied on top)");
                out.println("  jtune merge --adapter_path DIR --output_dir OUT [--model_path BASE] [--device D]");
                out.println("                                 fold a peft adapter into its base, write an HF checkpoint");
                out.println("  jtune demo [--size N]          list the devices and run a bf16 matmul on each backend");
                out.println("  jtune help [COMMAND]           the commands, or one command's usage");
                out.println();
                out.print(GLOBAL_FLAGS);
                return 0;
            }
            case CommandLine.Train t -> {
                t.warnings().forEach(w -> err.println("jtune: warning: " + w));
                TrainArgs a = t.args();
                // a worker (started with torchrun's variables) trains; else --nproc_per_node/--nnodes over 1 start the workers
                java.util.Optional<DistEnv> worker = DistEnv.fromEnvironment(System::getenv);
                DistEnv.Layout layout = TrainCommand.layout(a);
                if (worker.isEmpty() && layout.worldSize() > 1) {
                    return Launcher.launch(layout, Main.class, List.of(args), a.outputDir().resolve("logs"), out, err);
                }
                TrainCommand.run(a, t.given(), worker.orElse(DistEnv.SINGLE), out);
                return 0;
            }
        }
    }

    private static int demo(String[] args, PrintStream out, PrintStream err) {
        if (wantsHelp(args)) {
            out.print(DEMO_USAGE);
            return 0;
        }
        int size = 512;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--size") && i + 1 < args.length) {
                try {
                    size = Integer.parseInt(args[++i]);
                } catch (NumberFormatException e) {
                    err.println("jtune: --size expects a positive integer, got '" + args[i] + "'");
                    return 2;
                }
                if (size <= 0) {
                    err.println("jtune: --size expects a positive integer, got " + size);
                    return 2;
                }
            } else {
                err.println("jtune demo: unknown argument '" + args[i] + "' (usage: jtune demo [--size N])");
                return 2;
            }
        }
        demo(size, out);
        return 0;
    }

    static void demo(int n, PrintStream out) {
        List<Device> devices = Backends.available();
        out.println("jtune devices:");
        for (Device d : devices) {
            out.println("  " + Backends.get(d).description());
        }
        if (CudaBackend.deviceCount() == 0) {
            out.println("  no GPU: " + CudaBackend.unavailableReason());
            out.println("  (running on the cpu backend only)");
        }
        out.printf(Locale.ROOT, "%nbf16 matmul [%d x %d] @ [%d x %d], fp32 accumulation:%n", n, n, n, n);
        try (Scope scope = Scope.open("demo")) {
            Tensor a = Tensor.randn(Shape.of(n, n), DType.BF16, Device.CPU, 1);
            Tensor b = Tensor.randn(Shape.of(n, n), DType.BF16, Device.CPU, 2);
            float[] reference = null;
            for (Device d : devices) {
                Backend backend = Backends.get(d);
                try (Scope run = Scope.open(d.toString())) {
                    Tensor da = a.to(d);
                    Tensor db = b.to(d);
                    da.matmul(db); // warm-up: kernel loading, cuBLASLt planning
                    backend.synchronize();
                    long t0 = System.nanoTime();
                    Tensor c = da.matmul(db);
                    backend.synchronize();
                    double seconds = (System.nanoTime() - t0) / 1e9;
                    float[] values = c.toFloatArray();
                    if (reference == null) {
                        reference = values;
                    }
                    out.printf(Locale.ROOT, "  %-8s %9.3f ms  %10.1f GFLOP/s  relative difference to cpu %.2e%n", d,
                            seconds * 1e3, 2.0 * n * n * n / seconds / 1e9, relativeDifference(values, reference));
                }
            }
        }
    }

    static double relativeDifference(float[] x, float[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < x.length; i++) {
            double d = (double) x[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
    }
}
