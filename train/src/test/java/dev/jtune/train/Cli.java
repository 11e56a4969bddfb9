package dev.jtune.train;

/** jtune's command line run in-process, keeping the last run's output for tests that run several commands in a row. */
final class Cli {
    private CliFixtures.Run last;

    int run(String... args) {
        last = CliFixtures.run(args);
        return last.rc();
    }

    String out() {
        return last.out();
    }

    String err() {
        return last.err();
    }

    /** Exit status and both streams, for assertion messages. */
    String all() {
        return last.all();
    }
}
