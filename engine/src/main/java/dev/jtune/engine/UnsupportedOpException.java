package dev.jtune.engine;

/** An operation a backend does not implement for the given dtype or layout. */
public final class UnsupportedOpException extends EngineException {
    public UnsupportedOpException(String message) {
        super(message);
    }

    public UnsupportedOpException(String message, Throwable cause) {
        super(message, cause);
    }
}
