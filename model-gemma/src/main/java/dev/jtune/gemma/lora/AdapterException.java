package dev.jtune.gemma.lora;

import dev.jtune.JtuneException;

/**
 * A LoRA adapter that cannot be read, written or applied: an unsupported peft configuration, weights that do not
 * belong to the base model, a file that cannot be read or written. The message names the file or directory and
 * what does not fit.
 */
public final class AdapterException extends JtuneException {
    public AdapterException(String message) {
        super(message);
    }

    public AdapterException(String message, Throwable cause) {
        super(message, cause);
    }
}
