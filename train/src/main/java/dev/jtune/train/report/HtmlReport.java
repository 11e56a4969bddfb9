package dev.jtune.train.report;

import dev.jtune.engine.io.AtomicFiles;
import dev.jtune.train.loop.RunException;
import dev.jtune.train.loop.StepRecord;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;

/**
 * {@code report.html}: one self-contained page (inline CSS, SVG and two tiny scripts; nothing fetched) with the run's
 * identity, a banner when it failed, charts of loss (train and eval), learning rate, tokens/s and memory over the
 * steps, memory by category stacked (device, and host-mapped when the run had any: {@link MemoryCharts}), and the
 * settings table.
 *
 * <p>The page is also well-formed XML (every element closed, the scripts free of {@code <} and {@code &}), so tests
 * can read it with the JDK's parser. Its scripts only record, on {@code <body>}, how many charts the browser laid
 * out ({@code data-charts}) and the first script error ({@code data-script-error}); the charts work without them.
 */
public final class HtmlReport {
    private HtmlReport() {
    }

    /** Writes the page for {@code report} to {@code file}, atomically (a reader never sees half a page). */
    public static void write(Path file, RunReport report) {
        try {
            AtomicFiles.writeString(file, render(report));
        } catch (IOException e) {
            throw new RunException("writing " + file, e);
        }
    }

    /** The page's text. */
    static String render(RunReport report) {
        List<Chart> charts = report.steps().isEmpty() ? List.of() : charts(report);
        StringBuilder h = new StringBuilder(8192 + report.steps().size() * 600);
        h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>")
                .append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/><title>")
                .append(escape(report.title())).append("</title><style>").append(CSS).append("</style></head>\n")
                .append("<body data-charts-expected=\"").append(charts.size()).append("\">")
                .append("<script>").append(ERROR_SCRIPT).append("</script>\n")
                .append("<h1>").append(escape(report.title())).append("</h1>\n");
        report.failure().ifPresent(message -> h.append(failureBanner(message)));
        h.append(identity(report.identity()));
        h.append(summary(report));
        h.append("<section class=\"charts\">");
        charts.forEach(c -> h.append(c.html()).append('\n'));
        h.append("</section>\n");
        h.append(settings(report.settings()));
        h.append("<script>").append(COUNT_SCRIPT).append("</script>\n</body></html>\n");
        return h.toString();
    }

    /**
     * The four line charts, then the memory-by-category ones the steps' memory figures call for; the memory charts
     * name the device the figures were measured on (host memory on a cpu run).
     */
    static List<Chart> charts(RunReport report) {
        List<StepRecord> steps = report.steps();
        List<StepRecord> evals = steps.stream().filter(StepRecord::hasEval).toList();
        List<SvgChart.Series> loss = evals.isEmpty()
                ? List.of(series("train loss", "#c0392b", false, steps, StepRecord::loss))
                : List.of(series("train loss", "#c0392b", false, steps, StepRecord::loss),
                        series("eval loss", "#e67e22", true, evals, StepRecord::evalLoss));
        List<Chart> charts = new ArrayList<>(List.of(
                new SvgChart("loss", loss),
                new SvgChart("learning rate", List.of(series("learning rate", "#2980b9", false, steps, StepRecord::learningRate))),
                new SvgChart("tokens / s", List.of(series("tokens / s", "#27ae60", false, steps, StepRecord::tokensPerSecond))),
                new SvgChart(memoryTitle(report.memoryDevice()), List.of(
                        series("allocated", "#8e44ad", false, steps, StepRecord::allocatedGiB),
                        series("peak", "#16a085", true, steps, StepRecord::peakGiB)))));
        charts.addAll(MemoryCharts.of(steps, report.memoryDevice()));
        return charts;
    }

    static String memoryTitle(String device) {
        return device.isBlank() ? "memory allocated and peak (GiB)" : "memory allocated and peak on " + device + " (GiB)";
    }

    private static SvgChart.Series series(String name, String color, boolean dashed, List<StepRecord> steps, ToDoubleFunction<StepRecord> y) {
        return new SvgChart.Series(name, color, dashed, steps.stream().mapToDouble(StepRecord::step).toArray(),
                steps.stream().mapToDouble(y).toArray());
    }

    private static String failureBanner(String message) {
        return "<div class=\"failure\" role=\"alert\"><strong>The run stopped before it finished.</strong>"
                + "<pre>" + escape(message) + "</pre></div>\n";
    }

    private static String identity(List<RunReport.Entry> entries) {
        if (entries.isEmpty()) {
            return "";
        }
        StringBuilder h = new StringBuilder("<dl class=\"identity\">");
        for (RunReport.Entry e : entries) {
            h.append("<dt>").append(escape(e.label())).append("</dt><dd>").append(escape(e.value())).append("</dd>");
        }
        return h.append("</dl>\n").toString();
    }

    /** One line on how far the run got; figures that were never finite say so rather than print NaN. */
    private static String summary(RunReport report) {
        List<StepRecord> steps = report.steps();
        if (steps.isEmpty()) {
            return "<p class=\"summary\">No steps were logged.</p>\n";
        }
        StepRecord last = steps.getLast();
        double finalLoss = steps.reversed().stream().mapToDouble(StepRecord::loss).filter(Double::isFinite).findFirst().orElse(Double.NaN);
        double peak = steps.stream().mapToDouble(StepRecord::peakGiB).filter(Double::isFinite).max().orElse(Double.NaN);
        StringBuilder h = new StringBuilder("<p class=\"summary\">");
        h.append(String.format(Locale.ROOT, "%d logged steps up to step %d; last finite loss %s; peak memory %s GiB on %s; %.0f s",
                steps.size(), last.step(), number(finalLoss, "%.4f"), number(peak, "%.2f"), escape(report.memoryDevice()), last.elapsedSeconds()));
        if (last.skippedSteps() > 0) {
            h.append(String.format(Locale.ROOT, "; %d steps skipped for a non-finite loss or gradient norm", last.skippedSteps()));
        }
        return h.append(".</p>\n").toString();
    }

    private static String number(double v, String format) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, format, v) : "none";
    }

    /** The settings as flag / value / default; rows off their default are bold and marked, long values wrap. */
    private static String settings(List<RunReport.Setting> settings) {
        StringBuilder h = new StringBuilder("<h2>Settings</h2>\n");
        if (settings.isEmpty()) {
            return h.append("<p>No settings were recorded.</p>\n").toString();
        }
        h.append("<p class=\"note\"><span class=\"marker\">●</span> bold rows differ from their default.</p>")
                .append("<table class=\"settings\"><colgroup><col class=\"mark\"/><col class=\"flag\"/><col class=\"value\"/><col class=\"default\"/></colgroup>")
                .append("<thead><tr><th></th><th>flag</th><th>value</th><th>default</th></tr></thead><tbody>");
        for (RunReport.Setting s : settings) {
            boolean changed = !s.isDefault();
            h.append(changed ? "<tr class=\"changed\"><td class=\"marker\" title=\"differs from the default\">●</td>" : "<tr><td></td>")
                    .append("<td><code>").append(escape(s.flag())).append("</code></td>")
                    .append("<td>").append(cell(s.value())).append("</td>")
                    .append("<td>").append(cell(s.defaultValue())).append("</td></tr>");
        }
        return h.append("</tbody></table>\n").toString();
    }

    private static String cell(String value) {
        if (value == null || value.isEmpty()) {
            return "<span class=\"empty\">(empty)</span>";
        }
        return "<code>" + escape(value) + "</code>";
    }

    /**
     * Text as HTML (and XML) character data or attribute value. Control characters other than tab and newlines
     * become U+FFFD: XML forbids them, and a setting's value could carry one.
     */
    static String escape(String s) {
        StringBuilder b = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '&' -> b.append("&amp;");
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                case '\t', '\n', '\r' -> b.append(c);
                default -> b.append(c < 0x20 || c == 0x7f || c == 0xfffe || c == 0xffff ? '\ufffd' : c);
            }
        }
        return b.toString();
    }

    /** First on the page, so an error anywhere after it (or in it) is recorded for a reader or a test to see. */
    private static final String ERROR_SCRIPT = "window.onerror=function(message,source,line){"
            + "(document.body||document.documentElement).setAttribute('data-script-error',String(message)+(line?' (line '+line+')':''));};";

    /** Counts the charts the browser actually laid out (a box of non-zero size), now and again once loaded. */
    private static final String COUNT_SCRIPT = "(function(){function countCharts(){var n=0;"
            + "document.querySelectorAll('svg.chart').forEach(function(svg){var box=svg.getBoundingClientRect();"
            + "if(Math.min(box.width,box.height)>0){n++;}});"
            + "document.body.dataset.charts=String(n);}"
            + "countCharts();window.addEventListener('load',countCharts);})();";

    private static final String CSS = """
            body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;line-height:1.4;margin:0 auto;padding:1em 1.5em;max-width:1400px}
            h1{font-size:1.5em;margin:.3em 0 .6em}
            .failure{border:2px solid #b00020;background:#fdecea;color:#5f0010;padding:.7em 1em;border-radius:6px;margin:0 0 1em}
            .failure pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:.4em 0 0;font-size:.9em}
            dl.identity{display:grid;grid-template-columns:minmax(0,max-content) minmax(0,1fr);gap:.15em 1em;margin:0 0 1em}
            dl.identity dt{font-weight:600;overflow-wrap:anywhere}
            dl.identity dd{margin:0;overflow-wrap:anywhere}
            .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1em;margin:1em 0}
            figure.chart-box{margin:0;border:1px solid #ddd;border-radius:6px;padding:.5em;min-width:0}
            figcaption{font-weight:600;overflow-wrap:anywhere}
            figcaption .caption-note{display:block;font-weight:normal;font-size:.85em;color:#666}
            svg.chart{display:block;width:100%;height:auto;font-size:14px}
            svg.chart .frame{fill:none;stroke:#999}
            svg.chart .grid{stroke:#eee}
            svg.chart .tick{stroke:#999}
            svg.chart text{fill:#444;stroke:none}
            svg.chart .note{font-size:16px;fill:#888}
            svg.chart polyline{fill:none;stroke-width:2}
            svg.chart rect.bar{stroke:none;shape-rendering:crispEdges}
            svg.chart circle.pt{stroke:none;opacity:.7}
            svg.chart circle.pt:hover{opacity:1;r:6px}
            svg.chart.dense circle.pt{opacity:0}
            svg.chart.dense circle.pt:hover{opacity:1}
            ul.legend{list-style:none;margin:.3em 0 0;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.2em;font-size:.9em}
            .swatch{display:inline-block;width:1.6em;border-top:3px solid;vertical-align:middle;margin-right:.4em}
            .swatch.dashed{border-top-style:dashed}
            .swatch.block{width:1em;height:1em;border-top:none;border-radius:2px}
            table.settings{border-collapse:collapse;width:100%;table-layout:fixed}
            table.settings col.mark{width:1.5em}
            table.settings col.flag{width:25%}
            table.settings col.value{width:42%}
            table.settings th,table.settings td{text-align:left;vertical-align:top;padding:.25em .5em;border-bottom:1px solid #e5e5e5;overflow-wrap:anywhere}
            table.settings code{white-space:pre-wrap;overflow-wrap:anywhere}
            tr.changed{background:#fff8e1}
            tr.changed td{font-weight:bold}
            .marker{color:#b26a00}
            .empty,.note{color:#888}
            """;
}
