package dev.jtune.engine;

/** Base of every error the engine reports; unchecked, each subclass names one kind of failure. */
public sealed class EngineException extends RuntimeException
        permits ShapeException, DTypeException, ClosedException, OutOfDeviceMemoryException,
        UnsupportedOpException, DeviceUnavailableException, DeviceMismatchException, AutogradException {

    public EngineException(String message) {
        super(message);
    }

    public EngineException(String message, Throwable cause) {
        super(message, cause);
    }
}
