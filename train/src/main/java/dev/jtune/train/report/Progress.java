package dev.jtune.train.report;

import dev.jtune.train.loop.StepRecord;

import java.io.PrintStream;
import java.util.Locale;

/**
 * What the user sees while training: on a terminal, one line redrawn in place (a bar, step, loss, tokens/s, GPU
 * memory allocated and peak, ETA); elsewhere (a log file, CI), plain lines at each logging step.
 */
public sealed interface Progress permits Progress.Bar, Progress.Lines {

    void step(StepRecord r, long totalSteps, boolean logged);

    void message(String text);

    void done();

    /** Progress that shows nothing (library use, tests). */
    static Progress silent() {
        return new Lines(new PrintStream(java.io.OutputStream.nullOutputStream()));
    }

    static Progress forOutput(PrintStream out) {
        java.io.Console c = System.console();
        return c != null && c.isTerminal() ? new Bar(out) : new Lines(out);
    }

    static String summary(StepRecord r, long total) {
        return String.format(Locale.ROOT, "step %d/%d  loss %.4f%s  lr %.2e  %,.0f tok/s  mem %.2f GiB (peak %.2f)", r.step(), total, r.loss(),
                r.hasEval() ? String.format(Locale.ROOT, "  eval %.4f", r.evalLoss()) : "", r.learningRate(), r.tokensPerSecond(),
                r.allocatedGiB(), r.peakGiB());
    }

    static String eta(StepRecord r, long total) {
        double perStep = r.elapsedSeconds() / Math.max(1, r.step());
        long s = Math.round(perStep * (total - r.step()));
        return String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    }

    /** The in-place bar for terminals. */
    final class Bar implements Progress {
        private final PrintStream out;

        Bar(PrintStream out) {
            this.out = out;
        }

        @Override
        public void step(StepRecord r, long total, boolean logged) {
            int width = 24;
            int filled = (int) (width * r.step() / Math.max(1, total));
            out.print("\r[" + "#".repeat(filled) + ".".repeat(width - filled) + "] " + summary(r, total) + "  eta " + eta(r, total) + "   ");
            if (logged && r.hasEval()) {
                out.println();
            }
            out.flush();
        }

        @Override
        public void message(String text) {
            out.println("\r" + text);
        }

        @Override
        public void done() {
            out.println();
        }
    }

    /** Plain log lines, at logging steps only. */
    final class Lines implements Progress {
        private final PrintStream out;

        Lines(PrintStream out) {
            this.out = out;
        }

        @Override
        public void step(StepRecord r, long total, boolean logged) {
            if (logged) {
                out.println(summary(r, total) + "  eta " + eta(r, total));
            }
        }

        @Override
        public void message(String text) {
            out.println(text);
        }

        @Override
        public void done() {
            out.flush();
        }
    }
}
