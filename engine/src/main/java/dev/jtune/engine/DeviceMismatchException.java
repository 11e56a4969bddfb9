package dev.jtune.engine;

/** Operands of one op on different devices; the message names the op and both devices. */
public final class DeviceMismatchException extends EngineException {
    public DeviceMismatchException(String message) {
        super(message);
    }
}
