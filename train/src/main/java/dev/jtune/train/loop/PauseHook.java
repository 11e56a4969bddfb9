package dev.jtune.train.loop;

import java.util.Locale;

/**
 * Test-only: {@code -Djtune.test.pause=POINT} stops the process at one named point of the loop (it prints
 * {@code jtune: paused at POINT} to stderr and sleeps) so that a test can SIGKILL a real run exactly there. Points:
 * {@code after-log:N} (step N's metrics line is written), {@code in-checkpoint:N} (checkpoint-N is half written),
 * {@code after-final} (the last step is done, before the final outputs). Unset, it costs one field read.
 */
final class PauseHook {
    private static final String POINT = System.getProperty("jtune.test.pause", "");

    private PauseHook() {
    }

    static void at(String point) {
        if (!POINT.isEmpty() && POINT.equals(point)) {
            System.err.println("jtune: paused at " + point);
            System.err.flush();
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    static void at(String point, long step) {
        if (!POINT.isEmpty()) {
            at(String.format(Locale.ROOT, "%s:%d", point, step));
        }
    }
}
