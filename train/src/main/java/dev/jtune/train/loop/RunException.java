package dev.jtune.train.loop;

import dev.jtune.JtuneException;

/**
 * A run that cannot start or go on, for a reason the user can act on: an output directory holding another run, a
 * damaged checkpoint, a run whose loss stopped being finite. The message says what, where, and the way out.
 */
public final class RunException extends JtuneException {
    public RunException(String message) {
        super(message);
    }

    public RunException(String message, Throwable cause) {
        super(message, cause);
    }
}
