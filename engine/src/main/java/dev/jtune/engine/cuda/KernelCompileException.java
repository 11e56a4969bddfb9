package dev.jtune.engine.cuda;

import dev.jtune.JtuneException;

/** A kernel source that NVRTC rejected (the message carries its log) or that is missing. */
public final class KernelCompileException extends JtuneException {
    /** What usually helps: the headers NVRTC compiles against must be the toolkit's of the same release. */
    public static final String HINT = "NVRTC compiles the kernels against the CUDA headers in $CUDA_HOME/include "
            + "(else $CUDA_PATH/include, /usr/local/cuda/include): check that they are the CUDA 13 toolkit's, of the "
            + "same release as libnvrtc, or point CUDA_HOME at such a toolkit";

    public KernelCompileException(String message) {
        this(message, HINT);
    }

    /** @param hint what the user can do about it, or null */
    public KernelCompileException(String message, String hint) {
        super(message, null, hint);
    }
}
