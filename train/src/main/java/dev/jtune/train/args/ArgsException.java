package dev.jtune.train.args;

import dev.jtune.JtuneException;

import java.util.List;

/**
 * Everything wrong with a command line (or a config file, or saved arguments), collected and reported together:
 * unknown flags, missing values, values of the wrong type or out of range, refused flags and contradictions.
 * The message lists every problem, one a line; {@link #problems()} gives them one by one.
 */
public final class ArgsException extends JtuneException {
    private final List<String> problems;

    public ArgsException(List<String> problems) {
        super(message(problems));
        this.problems = List.copyOf(problems);
    }

    public ArgsException(String problem) {
        this(List.of(problem));
    }

    /** Each problem on its own, in the order found. */
    public List<String> problems() {
        return problems;
    }

    private static String message(List<String> problems) {
        if (problems.isEmpty()) {
            throw new IllegalArgumentException("an ArgsException needs at least one problem");
        }
        if (problems.size() == 1) {
            return problems.getFirst();
        }
        StringBuilder sb = new StringBuilder(problems.size() + " problems with the arguments:");
        for (String p : problems) {
            sb.append("\n  - ").append(p);
        }
        return sb.toString();
    }
}
