package dev.jtune.gemma.tokenizer;

import dev.jtune.JtuneException;

/**
 * A tokenizer file could not be loaded: missing or unreadable, malformed JSON, or a component (model, normalizer,
 * pre-tokenizer, decoder) this implementation does not support. The message names the file and, where it applies,
 * the JSON path of the offending value and what was found there.
 */
public class TokenizerException extends JtuneException {
    public TokenizerException(String message) {
        super(message);
    }

    public TokenizerException(String message, Throwable cause) {
        super(message, cause);
    }
}
