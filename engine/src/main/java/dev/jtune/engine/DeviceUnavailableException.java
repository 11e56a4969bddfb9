package dev.jtune.engine;

/** A device that cannot be used: no GPU, no driver, or a CUDA library that did not load. */
public final class DeviceUnavailableException extends EngineException {
    public DeviceUnavailableException(String message) {
        super(message);
    }

    public DeviceUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
