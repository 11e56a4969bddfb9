package dev.jtune.testing;

import java.util.function.Supplier;

/**
 * A system property set for the length of a block and put back as it was (unset, or its old value): for tests that
 * run a switch of jtune's ({@code -Djtune....}) both ways in one process.
 */
public final class SystemProperties {
    private SystemProperties() {
    }

    /** {@code body}'s result with {@code key} set to {@code value} while it runs. */
    public static <T> T with(String key, String value, Supplier<T> body) {
        String previous = System.setProperty(key, value);
        try {
            return body.get();
        } finally {
            if (previous == null) {
                System.clearProperty(key);
            } else {
                System.setProperty(key, previous);
            }
        }
    }

    /** {@code body} run with {@code key} set to {@code value}. */
    public static void with(String key, String value, Runnable body) {
        with(key, value, () -> {
            body.run();
            return null;
        });
    }
}
