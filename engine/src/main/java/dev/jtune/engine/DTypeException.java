package dev.jtune.engine;

/** Element types that an operation does not accept; the message names the op and the dtypes. */
public final class DTypeException extends EngineException {
    public DTypeException(String message) {
        super(message);
    }

    public DTypeException(String message, Throwable cause) {
        super(message, cause);
    }
}
