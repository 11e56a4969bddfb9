package dev.jtune.train.args;

import java.util.Collections;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

/**
 * The settings the user set explicitly, each with where it came from: the command line, a {@code --config} file, a
 * {@code --preset}, or a {@code --deepspeed} config that decides a flag (its {@code offload_optimizer.device} is
 * {@code --offload_optimizer}, its optimizer block {@code --optim}, its scheduler {@code --lr_scheduler_type}, a
 * number other than "auto" the flag it must equal). A flag not here has its default: the memory planner may fill it,
 * and never touches one that is here.
 */
public record GivenFlags(Map<Flag, String> origins) {

    public GivenFlags {
        Map<Flag, String> copy = new EnumMap<>(Flag.class);
        copy.putAll(origins);
        origins = Collections.unmodifiableMap(copy);
    }

    /** Nothing given: every setting at its default (as for the embedded default run). */
    public static GivenFlags none() {
        return new GivenFlags(Map.of());
    }

    /** Whether the user set {@code flag}, by any origin. */
    public boolean contains(Flag flag) {
        return origins.containsKey(flag);
    }

    /** The flags the user set. */
    public Set<Flag> flags() {
        return origins.isEmpty() ? Set.of() : Collections.unmodifiableSet(EnumSet.copyOf(origins.keySet()));
    }

    /** Where {@code flag} was set ("command line", "preset memory_optimized", "config file x.json", ...), or null. */
    public String origin(Flag flag) {
        return origins.get(flag);
    }
}
