package dev.jtune.train.args;

import java.util.List;
import java.util.Map;

/**
 * What a trainer command line asks for: the help text, or a run with its resolved {@link TrainArgs}. Main's use:
 * <pre>{@code
 * try {
 *     switch (CommandLine.parse(args)) {
 *         case CommandLine.Help h -> out.print(h.text());
 *         case CommandLine.Train t -> { t.warnings().forEach(w -> err.println("jtune: warning: " + w)); train(t.args(), t.given()); }
 *     }
 * } catch (ArgsException e) { err.println("jtune: " + e.getMessage()); return 2; }
 * }</pre>
 */
public sealed interface CommandLine permits CommandLine.Help, CommandLine.Train {

    /** {@code --help} (or {@code -h}) was given: print {@link #text()} and exit 0. */
    record Help(String text) implements CommandLine {
    }

    /**
     * A run. {@code warnings}: flags accepted but ignored (the seed's multimodal and kernel-selection flags),
     * environment settings jtune does not need; one sentence each. {@code given}: the settings the user set, by any
     * origin (the rest have their defaults, which the memory planner may fill).
     */
    record Train(TrainArgs args, List<String> warnings, GivenFlags given) implements CommandLine {
        public Train {
            warnings = List.copyOf(warnings);
            java.util.Objects.requireNonNull(given, "given");
        }
    }

    /** What the command line is for: a run, or {@code jtune plan} (the same flags; no data needed). */
    enum Purpose {
        TRAIN, PLAN
    }

    /** Parses a command line with the given environment, for a run or a plan. */
    static CommandLine parse(String[] args, Map<String, String> env, Purpose purpose) {
        return ArgsParser.parse(args, env, purpose);
    }

    /** Parses a command line with the process's environment ($HF_HOME and friends). */
    static CommandLine parse(String... args) {
        return ArgsParser.parse(args, System.getenv());
    }

    /** Parses a command line with the given environment (for $HF_HOME, $HF_HUB_CACHE, $HOME...). */
    static CommandLine parse(String[] args, Map<String, String> env) {
        return ArgsParser.parse(args, env);
    }

    /** The --help text: every flag of the table, grouped, with type, default and help; the presets; notes. */
    static String help() {
        return HelpText.render();
    }
}
