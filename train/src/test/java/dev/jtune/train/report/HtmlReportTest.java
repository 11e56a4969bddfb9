package dev.jtune.train.report;

import dev.jtune.train.loop.StepRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Element;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The structure of report.html, read back through the JDK's XML parser (no browser needed). */
class HtmlReportTest {
    @TempDir
    Path dir;

    private Page write(RunReport report) throws IOException {
        Path file = dir.resolve("report.html");
        HtmlReport.write(file, report);
        return Page.parse(Files.readString(file));
    }

    @Test
    void aRunGetsItsFourChartsWithRoundTicksAndHoverValues() throws IOException {
        RunReport report = Reports.normal();
        Page page = write(report);
        List<Element> charts = page.charts();
        // loss, learning rate, tokens/s, memory
        assertEquals(4, charts.size());
        assertEquals(String.valueOf(charts.size()), page.one("/html/body").getAttribute("data-charts-expected"));
        for (Element svg : charts) {
            String name = svg.getAttribute("aria-label");
            double[] y = tickValues(svg, "ytick");
            double[] x = tickValues(svg, "xtick");
            assertRoundAndEven(name + " y", y);
            assertRoundAndEven(name + " x", x);
            for (double v : x) {
                assertEquals(Math.rint(v), v, name + ": x ticks are step numbers");
            }
            assertTrue(x[0] <= report.steps().getFirst().step() && x[x.length - 1] >= report.steps().getLast().step(), name + ": x axis covers the steps");
            System.out.printf(Locale.ROOT, "%s: %d y ticks %s .. %s, %d x ticks %s .. %s%n", name, y.length, y[0], y[y.length - 1], x.length, x[0], x[x.length - 1]);
        }
        int finiteValues = (int) report.steps().stream().flatMapToDouble(s -> Stream.of(s.loss(), s.learningRate(), s.tokensPerSecond(),
                s.allocatedGiB(), s.peakGiB()).mapToDouble(Double::doubleValue)).filter(Double::isFinite).count();
        assertEquals(finiteValues, page.all("//svg//circle[title]").size(), "one hoverable marker per finite value");
        System.out.println("4 charts with round, evenly spaced ticks; " + finiteValues + " point markers carry their value as <title>");
    }

    @Test
    void theScriptsRecordErrorsFirstAndCountChartsLast() throws IOException {
        Page page = write(Reports.normal());
        List<Element> scripts = page.all("//script");
        assertEquals(2, scripts.size(), "the error recorder and the chart counter, nothing else");
        Element body = page.one("/html/body");
        assertEquals(scripts.getFirst(), firstElementChild(body), "onerror is installed before anything else");
        assertTrue(scripts.getFirst().getTextContent().contains("window.onerror"));
        assertTrue(scripts.getFirst().getTextContent().contains("data-script-error"));
        assertTrue(scripts.getLast().getTextContent().contains("dataset.charts"));
        for (String external : List.of("src=", "href=", "url(", "@import", "http:", "https:")) {
            assertFalse(page.text().contains(external), "self-contained: no " + external);
        }
        System.out.println("first element of <body> installs window.onerror; the last script sets data-charts; nothing external");
    }

    @Test
    void evalLossGetsALineAndALegendEntryOnlyWhenTheRunEvaluated() throws IOException {
        RunReport report = Reports.withEval();
        Element loss = write(report).figure("loss");
        long evals = report.steps().stream().filter(StepRecord::hasEval).count();
        assertEquals(1, Page.all(loss, ".//ul[@class='legend']/li[@data-series='eval loss']").size());
        assertEquals(1, Page.all(loss, ".//ul[@class='legend']/li[@data-series='train loss']").size());
        assertEquals(evals, Page.all(loss, ".//g[@data-series='eval loss']/circle").size());
        // eval points are sparse among the logged steps, yet they form one line, not isolated dots
        assertEquals(1, Page.all(loss, ".//g[@data-series='eval loss']/polyline").size());

        Element plain = write(Reports.normal()).figure("loss");
        assertEquals(0, Page.all(plain, ".//*[@data-series='eval loss']").size());
        System.out.println("eval run: legend has eval loss, " + evals + " eval markers on one line; plain run: no eval legend");
    }

    @Test
    void theMemoryChartNamesTheDeviceItMeasured() throws IOException {
        for (String device : List.of(Reports.CPU, Reports.CUDA)) {
            RunReport report = Reports.report(Reports.steps(30, s -> false, s -> false), device, java.util.Optional.empty());
            Page page = write(report);
            String caption = page.figure("memory").getElementsByTagName("figcaption").item(0).getTextContent();
            assertTrue(caption.contains(device), caption);
            assertTrue(caption.contains("GiB"), caption);
            if (device.startsWith("cpu")) {
                assertFalse(page.text().toLowerCase(Locale.ROOT).contains("gpu memory"), "a cpu run never says GPU memory");
            }
            System.out.println(device + " -> memory chart \"" + caption + "\"");
        }
    }

    @Test
    void aNaNLossSplitsTheLineInsteadOfBlankingTheChart() throws IOException {
        RunReport report = Reports.nanMidRun();
        Page page = write(report);
        Element loss = page.figure("loss");
        int expectedSegments = segments(report.steps(), StepRecord::loss);
        assertTrue(expectedSegments > 1, "the fixture has NaN mid-run");
        assertEquals(expectedSegments, Page.all(loss, ".//g[@data-series='train loss']/polyline").size());
        long finite = report.steps().stream().mapToDouble(StepRecord::loss).filter(Double::isFinite).count();
        assertEquals(finite, Page.all(loss, ".//g[@data-series='train loss']/circle").size());
        // the other charts are untouched: one line each
        assertEquals(1, Page.all(page.figure("learning rate"), ".//polyline").size());
        assertNoStrayCoordinates(page);
        System.out.println("loss with NaN at steps " + report.steps().stream().filter(s -> Double.isNaN(s.loss())).map(StepRecord::step).toList()
                + ": " + expectedSegments + " polyline segments, " + finite + " markers, every coordinate finite and inside the drawing");
    }

    @Test
    void aChartWithNoFiniteValueSaysSo() throws IOException {
        RunReport report = Reports.allNaN();
        Page page = write(report);
        List<Element> charts = page.charts();
        assertEquals(4, charts.size(), "the charts are still there, saying why they are empty");
        for (Element svg : charts) {
            assertEquals(SvgChart.NO_FINITE_VALUES, Page.all(svg, ".//text[@class='note']").getFirst().getTextContent());
            assertEquals(0, Page.all(svg, ".//polyline|.//circle").size());
        }
        assertNoStrayCoordinates(page);
        System.out.println("all-NaN run: " + charts.size() + " charts each say \"" + SvgChart.NO_FINITE_VALUES + "\"; no NaN in the page");
    }

    @Test
    void settingsAreATableWithNonDefaultRowsMarkedAndEverythingEscaped() throws IOException {
        RunReport report = Reports.normal();
        Page page = write(report);
        List<Element> rows = page.all("//table[@class='settings']/tbody/tr");
        assertEquals(report.settings().size(), rows.size());
        for (int i = 0; i < rows.size(); i++) {
            RunReport.Setting s = report.settings().get(i);
            Element row = rows.get(i);
            List<Element> cells = Page.all(row, "td");
            assertEquals(!s.isDefault(), row.getAttribute("class").equals("changed"), s.flag());
            assertEquals(!s.isDefault(), !cells.get(0).getTextContent().isBlank(), s.flag() + ": marker column");
            // the parser undoes the escaping: what reads back is exactly what was set
            assertEquals(List.of(s.flag(), s.value(), s.defaultValue()), cells.subList(1, 4).stream().map(Element::getTextContent).toList());
        }
        assertFalse(page.text().contains(Reports.SCRIPT_VALUE), "a setting's <script> reaches the page escaped");
        assertEquals(2, page.all("//script").size());
        assertTrue(page.text().contains("overflow-wrap:anywhere"), "long values wrap");
        System.out.println(rows.size() + " settings rows, " + report.settings().stream().filter(s -> !s.isDefault()).count()
                + " marked non-default; " + Reports.SCRIPT_VALUE + " escaped");
    }

    @Test
    void identityComesFirstAndAFailureIsABanner() throws IOException {
        RunReport report = Reports.failed();
        Page page = write(report);
        Element banner = page.one("//div[@class='failure']");
        assertEquals("alert", banner.getAttribute("role"));
        assertEquals(report.failure().orElseThrow(), Page.all(banner, "pre").getFirst().getTextContent());
        assertTrue(banner.getTextContent().contains("stopped"));
        List<Element> terms = page.all("//dl[@class='identity']/dt");
        List<Element> values = page.all("//dl[@class='identity']/dd");
        assertEquals(report.identity().stream().map(RunReport.Entry::label).toList(), terms.stream().map(Element::getTextContent).toList());
        assertEquals(report.identity().stream().map(RunReport.Entry::value).toList(), values.stream().map(Element::getTextContent).toList());
        Element firstChart = page.charts().getFirst();
        assertTrue(Page.precedes(banner, firstChart) && Page.precedes(page.one("//dl[@class='identity']"), firstChart), "both above the charts");
        assertFalse(page.text().contains("<script>alert(1)"), "the failure message is escaped");

        assertEquals(0, write(Reports.normal()).all("//div[@class='failure']").size(), "no banner for a run that finished");
        System.out.println("failure banner carries the message verbatim; identity dl has " + terms.size() + " entries, above the charts");
    }

    @Test
    void aRunWithNoStepsStillGetsAPage() throws IOException {
        Page page = write(Reports.noSteps());
        assertEquals(0, page.charts().size());
        assertEquals("0", page.one("/html/body").getAttribute("data-charts-expected"));
        assertTrue(page.one("//p[@class='summary']").getTextContent().contains("No steps"));
        assertEquals(1, page.all("//div[@class='failure']").size());
        System.out.println("no steps: 0 charts, a summary saying so, the failure banner");
    }

    @Test
    void theFileIsReplacedWholeWithNoTemporaryLeftBehind() throws IOException {
        Path file = dir.resolve("report.html");
        HtmlReport.write(file, Reports.normal());
        HtmlReport.write(file, Reports.failed());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList());
        }
        assertTrue(Files.readString(file).contains("class=\"failure\""), "the second write replaced the first");
        System.out.println("two writes leave exactly report.html, holding the second page");
    }

    @Test
    void theDeviceStackHasItsCategoriesInOrderAsTallAsTheirBytesUnderTheMeasuredPeak() throws IOException {
        RunReport report = Reports.memoryByCategory(Reports.CUDA, false);
        Page page = write(report);
        assertEquals(5, page.charts().size(), "the four charts and the device's stack; no host chart without host bytes");
        assertEquals("5", page.one("/html/body").getAttribute("data-charts-expected"));
        Element figure = page.figure("stacked peaks by category");
        String caption = Page.all(figure, "figcaption").getFirst().getTextContent();
        assertTrue(caption.contains("on " + Reports.CUDA + " (GiB)"), caption);
        assertTrue(caption.contains("need not coincide") && caption.contains("more than the peak"), caption);
        // bottom first, in MemoryCategory's order (not the fixture map's); the peak as a line after them
        List<String> keys = List.of("weights_device", "quantized_weights", "adapters", "gradients_device", "activations");
        List<String> names = List.of("weights", "quantized weights", "adapters", "gradients", "activations");
        assertEquals(Stream.concat(names.stream(), Stream.of("device peak")).toList(), legend(figure));
        int columns = assertStack(figure, report.steps(), keys, names, "device_peak");
        // steps 15 and 20 log the same figures: one bar across both
        assertEquals(4, columns);
        assertEquals(0, Page.all(figure, ".//g[@data-first-step='1']/rect[@data-series='activations']").size(), "activations are 0 at step 1");
        System.out.println("device stack: " + columns + " bars over " + report.steps().size() + " logged steps, " + names
                + " bottom first, each as tall as its bytes on the chart's axis, the peak's line level over each bar");
    }

    @Test
    void aCategoryZeroThroughoutIsLeftOutAndARunWithNoMemoryFiguresGetsNoStack() throws IOException {
        Element figure = write(Reports.memoryByCategory(Reports.CUDA, false)).figure("stacked peaks by category");
        List<String> legend = legend(figure);
        for (String zero : List.of("backward", "optimizer", "master weights", "workspace", "other")) {
            assertFalse(legend.contains(zero), zero + " is 0 at every step: " + legend);
            assertEquals(0, Page.all(figure, ".//rect[@data-series='" + zero + "']").size(), zero);
        }
        assertTrue(legend.contains("activations"), "activations are 0 at step 1 only, so they stay: " + legend);

        // every figure present but zero, and a log from before memory_bytes: the four charts, no stack
        List<StepRecord> zeros = Reports.steps(20, s -> false, s -> false).stream()
                .map(s -> Reports.withMemory(s, java.util.Map.of(), 0, java.util.Map.of(), 0)).toList();
        for (RunReport report : List.of(Reports.report(zeros, Reports.CUDA, java.util.Optional.empty()), Reports.normal())) {
            Page page = write(report);
            assertEquals(4, page.charts().size());
            assertEquals(0, page.all("//svg[contains(@class, 'stacked')]").size());
        }
        System.out.println("left out of the stack and its legend: backward, optimizer, master weights, workspace, other; "
                + "no stack at all when every category is 0 or the log has no memory figures");
    }

    @Test
    void stepsLoggedWithoutMemoryFiguresAreAGapInsideTheDrawing() throws IOException {
        // a run resumed from a log written before memory_bytes: its first steps have no figures
        List<StepRecord> withMemory = Reports.memoryByCategory(Reports.CUDA, false).steps();
        List<StepRecord> steps = new java.util.ArrayList<>(Reports.steps(20, s -> false, s -> false).subList(0, 2));
        steps.addAll(withMemory.subList(2, withMemory.size()));
        Element figure = write(Reports.report(steps, Reports.CUDA, java.util.Optional.empty())).figure("stacked peaks by category");
        List<Element> bars = Page.all(figure, ".//g[@class='column']");
        assertEquals(List.of("10", "15"), bars.stream().map(b -> b.getAttribute("data-first-step")).toList(), "no bar for steps 1 and 5");
        for (Element e : Page.all(figure, ".//rect")) {
            double x = Double.parseDouble(e.getAttribute("x"));
            double w = Double.parseDouble(e.getAttribute("width"));
            assertTrue(x >= SvgChart.LEFT && x + w <= SvgChart.WIDTH - SvgChart.RIGHT + 1e-9, "inside the plot: x " + x + ", width " + w);
        }
        System.out.println("steps 1 and 5 without memory figures: bars from step 10 on, all inside the plot");
    }

    @Test
    void aSingleLoggedStepIsASingleBar() throws IOException {
        RunReport report = Reports.oneStepWithMemory();
        Page page = write(report);
        assertEquals(6, page.charts().size(), "the four charts and both stacks");
        for (String prefix : List.of("stacked peaks by category", "pinned host memory by category")) {
            Element figure = page.figure(prefix);
            Element svg = Page.all(figure, ".//svg").getFirst();
            assertFalse(svg.getAttribute("class").contains("empty"), prefix + " is drawn, not empty");
            List<Element> bars = Page.all(svg, ".//g[@class='column']");
            assertEquals(1, bars.size(), prefix);
            double[] x = scale(svg, "xtick", "x");
            double width = Double.parseDouble(Page.all(bars.getFirst(), "rect").getFirst().getAttribute("width"));
            // the lone bar is centred on its step and half a step wide (a quarter of the axis' two steps)
            double left = Double.parseDouble(Page.all(bars.getFirst(), "rect").getFirst().getAttribute("x"));
            assertEquals(x[0] + x[1] * (1 - StackedChart.SINGLE_BAR_HALF_WIDTH), left, TOLERANCE_PX, prefix + ": left edge");
            assertEquals(2 * StackedChart.SINGLE_BAR_HALF_WIDTH * x[1], width, TOLERANCE_PX, prefix + ": width");
            System.out.printf(Locale.ROOT, "%s: one bar %.1f px wide at step 1%n", prefix, width);
        }
        Element device = page.figure("stacked peaks by category");
        assertStack(device, report.steps(), List.of("weights_device", "gradients_device", "activations"),
                List.of("weights", "gradients", "activations"), "device_peak");
        assertStack(page.figure("pinned host memory by category"), report.steps(), List.of("optimizer_host"), List.of("optimizer"), "pinned_host_peak");
        String[] peak = Page.all(device, ".//g[@data-series='device peak']/polyline").getFirst().getAttribute("points").split(" ");
        assertEquals(2, peak.length, "the peak is a level segment across the bar");
    }

    @Test
    void hostBytesGetAHostStackBesideTheDevicesWithOneColourPerCategory() throws IOException {
        RunReport report = Reports.memoryByCategory(Reports.CUDA, true);
        Page page = write(report);
        assertEquals(6, page.charts().size(), "the four charts, the device's stack and the host's");
        assertEquals("6", page.one("/html/body").getAttribute("data-charts-expected"));
        Element device = page.figure("stacked peaks by category");
        Element host = page.figure("pinned host memory by category");
        assertTrue(Page.precedes(device, host), "the device first");
        String caption = Page.all(host, "figcaption").getFirst().getTextContent();
        assertTrue(caption.contains(Reports.CUDA) && caption.contains("not part of the device figures"), caption);
        List<String> names = List.of("weights", "optimizer", "master weights");
        assertEquals(Stream.concat(names.stream(), Stream.of("pinned host peak")).toList(), legend(host));
        int columns = assertStack(host, report.steps(), List.of("weights_host", "optimizer_host", "master_weights_host"), names, "pinned_host_peak");
        assertEquals(4, columns);

        java.util.Map<String, String> colours = new java.util.HashMap<>();
        for (Element figure : List.of(device, host)) {
            List<String> chart = new java.util.ArrayList<>();
            for (Element rect : Page.all(figure, ".//rect[@data-series]")) {
                String name = rect.getAttribute("data-series");
                String previous = colours.putIfAbsent(name, rect.getAttribute("fill"));
                assertTrue(previous == null || previous.equals(rect.getAttribute("fill")), name + " has one colour in both charts");
                if (!chart.contains(rect.getAttribute("fill"))) {
                    chart.add(rect.getAttribute("fill"));
                }
            }
            assertEquals(legend(figure).size() - 1, chart.size(), "each category of a chart has a colour of its own");
        }
        System.out.println("host stack " + names + " under the pinned host peak, after the device's; colours " + colours);
    }

    @Test
    void aCpuRunsStacksNameTheCpuAndItsHostMemory() throws IOException {
        Page page = write(Reports.memoryByCategory(Reports.CPU, true));
        String device = Page.all(page.figure("stacked peaks by category"), "figcaption").getFirst().getTextContent();
        String host = Page.all(page.figure("host-mapped memory by category"), "figcaption").getFirst().getTextContent();
        assertTrue(device.startsWith("stacked peaks by category on " + Reports.CPU + " (GiB)"), device);
        assertTrue(host.startsWith("host-mapped memory by category on " + Reports.CPU + ", not pinned (GiB)"), host);
        assertFalse(page.text().toLowerCase(Locale.ROOT).contains("gpu"), "a cpu run never says GPU");
        System.out.println("cpu run: \"" + device.substring(0, device.indexOf(')') + 1) + "...\", \"" + host.substring(0, host.indexOf("(GiB)") + 5) + "\"");
    }

    /**
     * How far a drawn position may be from the one computed from the chart's own axis: tick and rect coordinates are
     * printed to 0.1 px (0.05 each way); the scale is read from the first and last tick, 244 px apart, so it is off by
     * at most 0.1/244 relatively, 0.1 px over the full height; a rect's height is the difference of two rounded
     * edges (0.1 px). Together at most 0.05 + 0.1 + 0.1 = 0.25 px.
     */
    private static final double TOLERANCE_PX = 0.25;

    /** The legend's entries, in order. */
    private static List<String> legend(Element figure) {
        return Page.all(figure, ".//ul[@class='legend']/li").stream().map(li -> li.getAttribute("data-series")).toList();
    }

    /**
     * An axis read off the drawing: {pixel of value 0, pixels per unit}, from the first and last tick's position
     * (attribute pos of the tick labels of class cls, or their grid lines' y1 for the y axis) and label.
     */
    private static double[] scale(Element svg, String cls, String pos) {
        List<Element> labels = Page.all(svg, ".//text[@class='" + cls + "']");
        double p0 = Double.parseDouble(labels.getFirst().getAttribute(pos));
        double pN = Double.parseDouble(labels.getLast().getAttribute(pos));
        double v0 = Double.parseDouble(labels.getFirst().getTextContent());
        double vN = Double.parseDouble(labels.getLast().getTextContent());
        double perUnit = (pN - p0) / (vN - v0);
        return new double[] {p0 - v0 * perUnit, perUnit};
    }

    /**
     * A stacked chart against the steps' memory_bytes: bars side by side from the first logged step to the last,
     * each reaching half-way to its neighbours (one bar across steps that logged the same figures); in each, a rect
     * per key with bytes, in the given order, as tall as its bytes in GiB on the chart's own y axis and sitting on
     * the one below (the first on 0); the line level across each bar at lineKey's bytes. Returns the bars.
     */
    private static int assertStack(Element figure, List<StepRecord> steps, List<String> keys, List<String> names, String lineKey) {
        Element svg = Page.all(figure, ".//svg").getFirst();
        double[] y = scale(svg, "ytick", "y");
        double[] x = scale(svg, "xtick", "x");
        assertEquals(0, Double.parseDouble(Page.all(svg, ".//text[@class='ytick']").getFirst().getTextContent()), "the stack starts at 0");
        double gib = 1L << 30;
        List<Element> bars = Page.all(svg, ".//g[@class='column']");
        List<String[]> line = Page.all(svg, ".//g[contains(@class, 'line')]/polyline").stream()
                .flatMap(p -> Stream.of(p.getAttribute("points").split(" "))).map(xy -> xy.split(",")).toList();
        assertEquals(2 * bars.size(), line.size(), "the line is level across every bar");
        int next = 0;
        for (int b = 0; b < bars.size(); b++) {
            Element bar = bars.get(b);
            long first = Long.parseLong(bar.getAttribute("data-first-step"));
            long last = Long.parseLong(bar.getAttribute("data-last-step"));
            int i = next;
            assertEquals(steps.get(i).step(), first, "bars cover the steps in order");
            while (next < steps.size() && steps.get(next).step() <= last) {
                assertEquals(steps.get(i).memoryBytes(), steps.get(next).memoryBytes(), "one bar only across equal figures");
                next++;
            }
            java.util.Map<String, Long> bytes = steps.get(i).memoryBytes();
            List<String> expected = new java.util.ArrayList<>();
            for (int k = 0; k < keys.size(); k++) {
                if (bytes.getOrDefault(keys.get(k), 0L) > 0) {
                    expected.add(names.get(k));
                }
            }
            List<Element> rects = Page.all(bar, "rect");
            assertEquals(expected, rects.stream().map(r -> r.getAttribute("data-series")).toList(), "step " + first + ": bottom first");
            double base = y[0];
            long below = 0;
            for (Element r : rects) {
                String key = keys.get(names.indexOf(r.getAttribute("data-series")));
                double top = Double.parseDouble(r.getAttribute("y"));
                double height = Double.parseDouble(r.getAttribute("height"));
                assertEquals(base, top + height, 1e-9, "step " + first + ": " + key + " sits on the rect below");
                assertEquals(-bytes.get(key) / gib * y[1], height, TOLERANCE_PX, "step " + first + ": " + key + "'s height");
                below += bytes.get(key);
                assertEquals(y[0] + below / gib * y[1], top, TOLERANCE_PX, "step " + first + ": " + key + "'s top, at the stack's bytes so far");
                base = top;
            }
            if (steps.size() > 1) {
                double left = i == 0 ? first : (steps.get(i - 1).step() + first) / 2.0;
                double right = next == steps.size() ? last : (last + steps.get(next).step()) / 2.0;
                for (Element r : rects) {
                    assertEquals(x[0] + left * x[1], Double.parseDouble(r.getAttribute("x")), TOLERANCE_PX, "step " + first + ": left edge");
                    assertEquals((right - left) * x[1], Double.parseDouble(r.getAttribute("width")), TOLERANCE_PX, "step " + first + ": width");
                }
            }
            double level = y[0] + bytes.get(lineKey) / gib * y[1];
            assertEquals(level, Double.parseDouble(line.get(2 * b)[1]), TOLERANCE_PX, "step " + first + ": the line's level");
            assertEquals(level, Double.parseDouble(line.get(2 * b + 1)[1]), TOLERANCE_PX, "step " + first + ": the line's level");
        }
        assertEquals(steps.size(), next, "every logged step is in a bar");
        return bars.size();
    }

    /** Polylines a series needs: one per run of two or more consecutive finite values. */
    private static int segments(List<StepRecord> steps, ToDoubleFunction<StepRecord> value) {
        int segments = 0;
        int run = 0;
        for (StepRecord s : steps) {
            run = Double.isFinite(value.applyAsDouble(s)) ? run + 1 : 0;
            segments += run == 2 ? 1 : 0;
        }
        return segments;
    }

    private static double[] tickValues(Element svg, String cls) {
        return Page.all(svg, ".//text[@class='" + cls + "']").stream().mapToDouble(e -> Double.parseDouble(e.getTextContent())).toArray();
    }

    /** Several ticks, evenly spaced by 1, 2 or 5 times a power of ten, each label distinct. */
    static void assertRoundAndEven(String what, double[] ticks) {
        assertTrue(ticks.length >= 3 && ticks.length <= 12, what + ": " + ticks.length + " ticks");
        double step = ticks[1] - ticks[0];
        for (int i = 1; i < ticks.length; i++) {
            assertEquals(step, ticks[i] - ticks[i - 1], Math.abs(step) * 1e-6, what + ": even spacing");
        }
        double mantissa = step / Math.pow(10, Math.floor(Math.log10(step) + 1e-9));
        assertTrue(List.of(1L, 2L, 5L).contains(Math.round(mantissa)) && Math.abs(mantissa - Math.round(mantissa)) < 1e-6,
                what + ": step " + step + " is not 1, 2 or 5 times a power of ten");
    }

    /** Every drawn coordinate is a number inside its chart's viewBox: no NaN or infinity leaked into the SVG. */
    private static void assertNoStrayCoordinates(Page page) {
        Pattern number = Pattern.compile("[^ ,]+");
        for (Element svg : page.charts()) {
            String[] box = svg.getAttribute("viewBox").split(" ");
            double[] limit = {Double.parseDouble(box[2]), Double.parseDouble(box[3])};
            for (Element e : Page.all(svg, ".//polyline|.//circle")) {
                String coords = e.getTagName().equals("polyline") ? e.getAttribute("points") : e.getAttribute("cx") + "," + e.getAttribute("cy");
                Matcher m = number.matcher(coords);
                for (int i = 0; m.find(); i++) {
                    double v = Double.parseDouble(m.group());
                    assertTrue(v >= 0 && v <= limit[i % 2], e.getTagName() + " coordinate " + m.group() + " outside the drawing");
                }
            }
        }
    }

    private static Element firstElementChild(Element parent) {
        for (var n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e) {
                return e;
            }
        }
        return null;
    }
}
