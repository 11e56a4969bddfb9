package dev.jtune.train;

import dev.jtune.JtuneException;

/**
 * A command (train, generate, merge) that cannot do what was asked, for a reason the user can act on: inputs that
 * do not belong together (a tokenizer and a model, a prompt and a compacted vocabulary), a file it cannot read or
 * write. The message names what and where. A training run's own problems are {@code RunException}s.
 */
public final class CommandException extends JtuneException {
    public CommandException(String message) {
        super(message);
    }

    public CommandException(String message, Throwable cause) {
        super(message, cause);
    }

    /** @param hint what the user can do about it, or null */
    public CommandException(String message, Throwable cause, String hint) {
        super(message, cause, hint);
    }
}
