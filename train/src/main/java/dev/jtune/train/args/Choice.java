package dev.jtune.train.args;

/** An enum whose constants are the values of a flag; {@link #flagValue()} is how the flag spells each one. */
public interface Choice {
    /** The constant's spelling on the command line and in JSON: its name in lower case. */
    default String flagValue() {
        return ((Enum<?>) this).name().toLowerCase(java.util.Locale.ROOT);
    }
}
