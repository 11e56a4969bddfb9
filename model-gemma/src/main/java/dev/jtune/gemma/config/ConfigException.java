package dev.jtune.gemma.config;

import dev.jtune.JtuneException;

/**
 * A config.json that cannot describe a supported model: unreadable or malformed JSON, an unsupported
 * {@code model_type}, a required field missing, a value of the wrong type or out of range. The message names the
 * file (when there is one), the field, and what was expected vs found.
 */
public class ConfigException extends JtuneException {
    private final String source;
    private final String field;
    private final String problem;

    public ConfigException(String source, String field, String problem) {
        this(source, field, problem, null);
    }

    public ConfigException(String source, String field, String problem, Throwable cause) {
        super((source == null ? "config" : source) + (field == null ? "" : ": field '" + field + "'") + ": " + problem, cause);
        this.source = source;
        this.field = field;
        this.problem = problem;
    }

    /** The file (or other source) the config came from, or null. */
    public String source() {
        return source;
    }

    /** The offending field (a JSON key, "text_config.x" for nested ones), or null. */
    public String field() {
        return field;
    }

    /** What is wrong, without the source and field prefix. */
    public String problem() {
        return problem;
    }
}
