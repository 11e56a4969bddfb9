package dev.jtune.engine;

import dev.jtune.JtuneException;

/** Base of every error the engine reports; unchecked, each subclass names one kind of failure. */
public sealed class EngineException extends JtuneException
        permits ShapeException, DTypeException, ClosedException, OutOfDeviceMemoryException,
        UnsupportedOpException, DeviceUnavailableException, DeviceMismatchException, AutogradException {

    public EngineException(String message) {
        super(message);
    }

    public EngineException(String message, Throwable cause) {
        super(message, cause);
    }

    /** @param hint what the user can do about it, or null */
    public EngineException(String message, Throwable cause, String hint) {
        super(message, cause, hint);
    }
}
