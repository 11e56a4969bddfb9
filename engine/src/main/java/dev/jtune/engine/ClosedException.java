package dev.jtune.engine;

/** Use of a tensor whose storage was freed, or of a closed scope. */
public final class ClosedException extends EngineException {
    public ClosedException(String message) {
        super(message);
    }

    public ClosedException(String message, Throwable cause) {
        super(message, cause);
    }
}
