package dev.jtune.engine;

/** A misuse of automatic differentiation: what was asked, of which tensor, and how to fix it. */
public final class AutogradException extends EngineException {
    public AutogradException(String message) {
        super(message);
    }
}
