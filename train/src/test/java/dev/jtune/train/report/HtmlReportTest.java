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
