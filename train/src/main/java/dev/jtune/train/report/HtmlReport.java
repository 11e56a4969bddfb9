package dev.jtune.train.report;

import dev.jtune.engine.io.AtomicFiles;
import dev.jtune.train.loop.StepRecord;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;

/**
 * {@code report.html}: a self-contained page (inline SVG, no scripts or network) with charts of loss (and eval
 * loss), learning rate, tokens/s and GPU memory over the steps, and the run's settings.
 */
public final class HtmlReport {
    private HtmlReport() {
    }

    public static void write(Path file, RunReport report) {
        String title = report.title();
        List<StepRecord> steps = report.steps();
        StringBuilder settingsText = new StringBuilder();
        report.settings().forEach(x -> settingsText.append(x.flag()).append(" = ").append(x.value()).append('\n'));
        String settings = settingsText.toString();
        StringBuilder h = new StringBuilder();
        h.append("<!doctype html><html><head><meta charset=\"utf-8\"><title>").append(escape(title)).append("</title><style>")
                .append("body{font-family:sans-serif;margin:2em;color:#222}.chart{display:inline-block;margin:1em}")
                .append("pre{background:#f4f4f4;padding:1em}</style></head><body>")
                .append("<h1>").append(escape(title)).append("</h1>");
        if (steps.isEmpty()) {
            h.append("<p>No steps were logged.</p>");
        } else {
            StepRecord last = steps.get(steps.size() - 1);
            h.append(String.format(Locale.ROOT, "<p>%d steps, final loss %.4f, peak GPU memory %.2f GiB, %.0f s.</p>",
                    last.step(), last.loss(), steps.stream().mapToDouble(StepRecord::peakGiB).max().orElse(0), last.elapsedSeconds()));
            h.append(chart("loss", steps, StepRecord::loss, "#c0392b", steps.stream().anyMatch(StepRecord::hasEval)));
            h.append(chart("learning rate", steps, StepRecord::learningRate, "#2980b9", false));
            h.append(chart("tokens / s", steps, StepRecord::tokensPerSecond, "#27ae60", false));
            h.append(chart("GPU memory allocated (GiB)", steps, StepRecord::allocatedGiB, "#8e44ad", false));
        }
        h.append("<h2>Settings</h2><pre>").append(escape(settings)).append("</pre></body></html>\n");
        try {
            AtomicFiles.writeString(file, h);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file, e);
        }
    }

    private static String chart(String name, List<StepRecord> steps, ToDoubleFunction<StepRecord> y, String color, boolean withEval) {
        int w = 520;
        int ht = 260;
        int pad = 48;
        double minX = steps.get(0).step();
        double maxX = Math.max(minX + 1, steps.get(steps.size() - 1).step());
        double minY = Double.POSITIVE_INFINITY;
        double maxY = Double.NEGATIVE_INFINITY;
        for (StepRecord s : steps) {
            double v = y.applyAsDouble(s);
            minY = Math.min(minY, v);
            maxY = Math.max(maxY, v);
            if (withEval && s.hasEval()) {
                minY = Math.min(minY, s.evalLoss());
                maxY = Math.max(maxY, s.evalLoss());
            }
        }
        if (maxY <= minY) {
            maxY = minY + 1;
        }
        StringBuilder svg = new StringBuilder();
        svg.append("<div class=\"chart\"><h3>").append(escape(name)).append("</h3>")
                .append(String.format(Locale.ROOT, "<svg width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"%s\">", w, ht, escape(name)))
                .append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"10\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>", pad, w - pad - 10, ht - pad - 10));
        svg.append(polyline(steps, y, minX, maxX, minY, maxY, w, ht, pad, color));
        if (withEval) {
            List<StepRecord> evals = steps.stream().filter(StepRecord::hasEval).toList();
            if (!evals.isEmpty()) {
                svg.append(polyline(evals, StepRecord::evalLoss, minX, maxX, minY, maxY, w, ht, pad, "#e67e22"));
            }
        }
        svg.append(String.format(Locale.ROOT, "<text x=\"4\" y=\"20\" font-size=\"11\">%.4g</text><text x=\"4\" y=\"%d\" font-size=\"11\">%.4g</text>",
                maxY, ht - pad, minY));
        svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"11\">step %.0f</text><text x=\"%d\" y=\"%d\" font-size=\"11\">step %.0f</text>",
                pad, ht - pad + 18, minX, w - 80, ht - pad + 18, maxX));
        return svg.append("</svg></div>").toString();
    }

    private static String polyline(List<StepRecord> steps, ToDoubleFunction<StepRecord> y, double minX, double maxX, double minY, double maxY,
                                   int w, int ht, int pad, String color) {
        StringBuilder pts = new StringBuilder();
        for (StepRecord s : steps) {
            double px = pad + (s.step() - minX) / (maxX - minX) * (w - pad - 10);
            double py = 10 + (1 - (y.applyAsDouble(s) - minY) / (maxY - minY)) * (ht - pad - 10);
            pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", px, py));
        }
        return "<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\" points=\"" + pts.toString().trim() + "\"/>";
    }

    static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
