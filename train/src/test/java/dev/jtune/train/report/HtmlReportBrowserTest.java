package dev.jtune.train.report;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * report.html in a real browser: headless Chromium loads the file, runs its scripts and lays out its charts, and
 * the DOM it dumps must say every chart was laid out and no script failed. Skipped (not passed) without Chromium.
 */
class HtmlReportBrowserTest {
    private static final List<String> NAMES = List.of("chromium", "chromium-browser", "google-chrome");
    private static final long TIMEOUT_SECONDS = 60;
    private static Path browser;

    @TempDir
    Path dir;

    @BeforeAll
    static void findBrowser() {
        browser = find().orElse(null);
        System.out.println(browser == null ? "browser: none of " + NAMES + " found; the browser tests are skipped"
                : "browser: " + browser + " (" + version(browser) + ")");
    }

    /** Per test rather than in @BeforeAll: Surefire counts a class-level skip as zero tests run, not as skipped. */
    @BeforeEach
    void needBrowser() {
        Assumptions.assumeTrue(browser != null, "no chromium: none of " + NAMES + " on PATH or in /usr/bin");
    }

    static Stream<Arguments> reports() {
        return Stream.of(Arguments.of("eval", Reports.withEval()), Arguments.of("NaN mid-run", Reports.nanMidRun()),
                Arguments.of("all NaN", Reports.allNaN()), Arguments.of("failed", Reports.failed()), Arguments.of("no steps", Reports.noSteps()),
                Arguments.of("memory by category", Reports.memoryByCategory(Reports.CUDA, true)), Arguments.of("one step", Reports.oneStepWithMemory()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("reports")
    void everyChartIsLaidOutAndNoScriptFails(String name, RunReport report) throws Exception {
        Path file = dir.resolve("report.html");
        HtmlReport.write(file, report);
        // what the browser should lay out: the chart drawings the file holds
        int expected = Page.parse(Files.readString(file)).charts().size();
        assertEquals(report.steps().isEmpty() ? 0 : HtmlReport.charts(report).size(), expected);

        String dom = dumpDom(file);
        String body = bodyTag(dom);
        assertEquals(null, attribute(body, "data-script-error"), "script error");
        assertNotNull(attribute(body, "data-charts"), "the count script did not run: " + body);
        assertEquals(expected, Integer.parseInt(attribute(body, "data-charts")), "charts laid out");
        System.out.println(name + ": the browser laid out " + expected + " charts, no script error (" + body + ")");
    }

    /** Runs the browser on file and returns the DOM it prints; fails on timeout or when it prints no page. */
    private String dumpDom(Path file) throws IOException, InterruptedException {
        Path profile = Files.createTempDirectory(dir, "profile");
        Path out = dir.resolve("dom.html");
        Path err = dir.resolve("stderr.txt");
        Process p = new ProcessBuilder(browser.toString(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--no-first-run", "--user-data-dir=" + profile, "--dump-dom", file.toUri().toString())
                .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            kill(p);
            fail(browser + " did not finish within " + TIMEOUT_SECONDS + " s; stderr: " + tail(err));
        }
        String dom = Files.readString(out, StandardCharsets.UTF_8);
        if (!dom.contains("<body")) {
            fail(browser + " exited " + p.exitValue() + " without a page; stderr: " + tail(err));
        }
        deleteQuietly(profile);
        return dom;
    }

    /** The browser's helpers (renderer, zygote) first, then the browser, so none outlives the test. */
    private static void kill(Process p) throws InterruptedException {
        p.descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
    }

    private static String bodyTag(String dom) {
        Matcher m = Pattern.compile("<body\\b[^>]*>").matcher(dom);
        assertTrue(m.find(), "no <body> in the dumped DOM");
        return m.group();
    }

    private static String attribute(String tag, String name) {
        Matcher m = Pattern.compile("\\s" + Pattern.quote(name) + "=\"([^\"]*)\"").matcher(tag);
        return m.find() ? m.group(1) : null;
    }

    static Optional<Path> find() {
        List<Path> dirs = new ArrayList<>();
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (!d.isEmpty()) {
                dirs.add(Path.of(d));
            }
        }
        dirs.add(Path.of("/usr/bin"));
        for (String name : NAMES) {
            for (Path d : dirs) {
                Path candidate = d.resolve(name);
                if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) {
                    return Optional.of(candidate);
                }
            }
        }
        return Optional.empty();
    }

    /** The browser's own version line (printed with the results, so a failure names what it ran on). */
    private static String version(Path binary) {
        try {
            Path out = Files.createTempFile("chromium-version", ".txt");
            Process p = new ProcessBuilder(binary.toString(), "--version").redirectErrorStream(true).redirectOutput(out.toFile()).start();
            if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                kill(p);
                return "version unknown: --version timed out";
            }
            String text = Files.readString(out).lines().filter(l -> l.matches(".*\\d+\\.\\d+\\.\\d+.*")).findFirst().orElse("version unknown");
            Files.deleteIfExists(out);
            return text.strip();
        } catch (IOException | InterruptedException e) {
            return "version unknown: " + e;
        }
    }

    private static String tail(Path file) throws IOException {
        String text = Files.exists(file) ? Files.readString(file) : "";
        return text.length() > 2000 ? "..." + text.substring(text.length() - 2000) : text;
    }

    /** A browser profile can hold files still being let go; @TempDir cleans what is left. */
    private static void deleteQuietly(Path root) {
        try (Stream<Path> paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException | java.io.UncheckedIOException e) {
            // best effort
        }
    }
}
