package dev.jtune.engine;

/** Shapes that do not fit an operation; the message names the op and every shape involved. */
public final class ShapeException extends EngineException {
    public ShapeException(String message) {
        super(message);
    }

    public ShapeException(String message, Throwable cause) {
        super(message, cause);
    }
}
