package dev.jtune.testing;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;
import org.opentest4j.TestAbortedException;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * The seeds of randomized tests, named in the message of a test that fails. Tests take their generators here:
 * {@link #random()} with a fresh seed ({@link System#nanoTime()}, or the next of {@code -Djtune.test.seed=N[,M...]}
 * to replay a failure), {@link #random(long)} with a fixed one; a seed passed on from such a generator needs no
 * note. This class is also the JUnit extension that adds the noted seeds to a failure: every test class of every
 * jtune module gets it (cuda-bindings' test jar, which the other modules' tests depend on, carries
 * META-INF/services and junit-platform.properties' autodetection).
 */
public final class Seeds implements TestExecutionExceptionHandler, AfterEachCallback {
    /** The system property of seeds to replay, comma-separated, in the order the test draws fresh ones. */
    public static final String REPLAY = "jtune.test.seed";

    private static final ThreadLocal<List<String>> NOTED = ThreadLocal.withInitial(ArrayList::new);
    private static final ThreadLocal<int[]> FRESH_DRAWN = ThreadLocal.withInitial(() -> new int[1]);

    /** A fresh seed (or the next one to replay), noted for the current test. */
    public static long seed() {
        int i = FRESH_DRAWN.get()[0]++;
        String replay = System.getProperty(REPLAY, "").strip();
        List<String> given = replay.isEmpty() ? List.of() : Arrays.asList(replay.split("\\s*,\\s*"));
        long seed = i < given.size() ? Long.parseLong(given.get(i)) : System.nanoTime();
        NOTED.get().add(Long.toString(seed));
        return seed;
    }

    /** A generator with a fresh seed (see {@link #seed()}). */
    public static Random random() {
        return new Random(seed());
    }

    /** A generator with a fixed seed, noted for the current test. */
    public static Random random(long seed) {
        NOTED.get().add(seed + " (fixed)");
        return new Random(seed);
    }

    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
        List<String> noted = NOTED.get();
        if (noted.isEmpty() || failure instanceof TestAbortedException) {
            throw failure;
        }
        String what = failure.getMessage() != null ? failure.getMessage() : failure.getClass().getName();
        AssertionError named = new AssertionError(what + " [random seeds " + String.join(", ", noted)
                + (noted.stream().allMatch(s -> s.endsWith("(fixed)")) ? ""
                : "; replay the fresh ones with -D" + REPLAY + "=" + String.join(",", noted.stream()
                        .filter(s -> !s.endsWith("(fixed)")).toList())) + "]", failure);
        named.setStackTrace(failure.getStackTrace());
        throw named;
    }

    @Override
    public void afterEach(ExtensionContext context) {
        NOTED.remove();
        FRESH_DRAWN.remove();
    }
}
