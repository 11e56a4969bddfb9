package dev.jtune.train.report;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import dev.jtune.JtuneException;

import java.io.IOException;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Optional;
import java.util.Set;

/**
 * An error and its causes as one line, for the command line: {@code message: cause's message: its cause's...}.
 * A cause whose text the line already contains is left out (wrappers often repeat it). A null or blank message
 * reads as the exception's class name; an {@link IOException}'s message is prefixed with its class name, since it
 * is often only a path ({@code NoSuchFileException: /x/y}); a JSON parse error reads as its message and position,
 * on one line. The first {@link JtuneException#hint() hint} in the chain follows as {@code ; hint: ...}, unless the
 * line already says it. The command line prints it after {@code jtune: }; report.html shows it when a run stops on
 * an error.
 */
public final class ErrorChain {
    private ErrorChain() {
    }

    /** {@code e}'s message followed by each cause's, separated by ": ", then the hint. */
    public static String describe(Throwable e) {
        StringBuilder line = new StringBuilder(text(e));
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        seen.add(e);
        for (Throwable c = e.getCause(); c != null && seen.add(c); c = c.getCause()) {
            String t = text(c);
            if (!line.toString().contains(t)) {
                line.append(": ").append(t);
            }
        }
        hint(e).filter(h -> !line.toString().contains(h)).ifPresent(h -> line.append("; hint: ").append(h));
        return line.toString();
    }

    /** The hint of the outermost JtuneException in {@code e}'s chain that has one. */
    public static Optional<String> hint(Throwable e) {
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Throwable c = e; c != null && seen.add(c); c = c.getCause()) {
            if (c instanceof JtuneException j && j.hint().isPresent()) {
                return j.hint();
            }
        }
        return Optional.empty();
    }

    /** What one throwable says about itself. */
    static String text(Throwable t) {
        String name = t.getClass().getSimpleName().isEmpty() ? t.getClass().getName() : t.getClass().getSimpleName();
        if (t instanceof JsonProcessingException j) {
            JsonLocation at = j.getLocation();
            String message = j.getOriginalMessage() == null ? "" : j.getOriginalMessage().strip();
            return name + ": " + message + (at == null || at.getLineNr() < 0 ? ""
                    : " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")");
        }
        String message = t.getMessage();
        if (message == null || message.isBlank()) {
            return name;
        }
        return t instanceof IOException ? name + ": " + message : message;
    }
}
