package dev.jtune;

import java.util.Optional;

/**
 * The root of every exception jtune throws: unchecked, and defined in the lowest module so that CUDA, kernel,
 * engine, model and command-line errors share it. A JtuneException is a condition the user can act on (bad input,
 * a bad file, a device that failed or ran out of memory); the command line prints it as one line with its causes
 * and its {@link #hint()}. Anything else that escapes is a bug. Each subclass names one kind of failure.
 */
public class JtuneException extends RuntimeException {
    private final String hint;

    public JtuneException(String message) {
        this(message, null, null);
    }

    public JtuneException(String message, Throwable cause) {
        this(message, cause, null);
    }

    /** @param hint what the user can do about it, or null when there is nothing useful to say */
    public JtuneException(String message, Throwable cause, String hint) {
        super(message, cause);
        this.hint = hint == null || hint.isBlank() ? null : hint;
    }

    /** For failures thrown often and caught at once, which need no stack trace (see {@link RuntimeException}). */
    protected JtuneException(String message, Throwable cause, String hint, boolean writableStackTrace) {
        super(message, cause, false, writableStackTrace);
        this.hint = hint == null || hint.isBlank() ? null : hint;
    }

    /** What the user can do about it (lower a setting, set a path, install something); empty when nothing useful. */
    public Optional<String> hint() {
        return Optional.ofNullable(hint);
    }
}
