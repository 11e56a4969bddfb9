package dev.jtune.engine.cuda;

/** A kernel source that NVRTC rejected (the message carries its log) or that is missing. */
public final class KernelCompileException extends RuntimeException {
    public KernelCompileException(String message) {
        super(message);
    }
}
