package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.JtuneException;
import dev.jtune.cuda.CudaException;
import dev.jtune.cuda.CudaLibrary;
import dev.jtune.engine.DeviceUnavailableException;
import dev.jtune.engine.cuda.KernelCompileException;
import dev.jtune.train.report.ErrorChain;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ErrorChainTest {
    @Test
    void causesFollowOnOneLine() {
        Exception e = new IllegalArgumentException("the adapter in /a does not fit the model in /m",
                new IllegalStateException("tensor x: expected [4, 64], found [4, 128]", new RuntimeException("innermost")));
        assertEquals("the adapter in /a does not fit the model in /m: tensor x: expected [4, 64], found [4, 128]: innermost",
                ErrorChain.describe(e));
    }

    @Test
    void aCauseTheMessageAlreadyContainsIsLeftOut() {
        Exception inner = new IllegalStateException("no such tensor t");
        assertEquals("reading /f: no such tensor t", ErrorChain.describe(new RuntimeException("reading /f: no such tensor t", inner)));
        // new UncheckedIOException(ioe) takes ioe.toString() as its message
        assertEquals("java.nio.file.NoSuchFileException: /x/y", ErrorChain.describe(new UncheckedIOException(new NoSuchFileException("/x/y"))));
    }

    @Test
    void ioExceptionsAreNamedAndNullMessagesReadAsTheClassName() {
        assertEquals("reading /x/y: NoSuchFileException: /x/y",
                ErrorChain.describe(new UncheckedIOException("reading /x/y", new NoSuchFileException("/x/y"))));
        assertEquals("failed: NullPointerException", ErrorChain.describe(new RuntimeException("failed", new NullPointerException())));
        assertEquals("IllegalStateException", ErrorChain.describe(new IllegalStateException()));
    }

    @Test
    void theFirstHintInTheChainFollowsOnceUnlessTheLineSaysItAlready() {
        JtuneException inner = new JtuneException("inner", null, "do X");
        assertEquals("outer: inner; hint: do X", ErrorChain.describe(new RuntimeException("outer", inner)));
        assertEquals("a: b; hint: outer hint", ErrorChain.describe(new JtuneException("a", new JtuneException("b", null, "inner hint"), "outer hint")));
        assertEquals("a. Hint: do X.", ErrorChain.describe(new JtuneException("a. Hint: do X.", null, "do X")));
        assertEquals("no hint", ErrorChain.describe(new JtuneException("no hint")));
    }

    @Test
    void aCycleEnds() {
        RuntimeException a = new RuntimeException("a");
        RuntimeException b = new RuntimeException("b", a);
        a.initCause(b);
        assertEquals("a: b", ErrorChain.describe(a));
    }

    @Test
    void aJsonErrorIsOneLineWithItsPosition(@TempDir Path tmp) throws IOException {
        Path f = tmp.resolve("c.json");
        Files.writeString(f, "{\"a\": [1, 2,,]}");
        try {
            new ObjectMapper().readTree(f.toFile());
        } catch (IOException e) {
            String line = ErrorChain.describe(new UncheckedIOException("reading " + f, e));
            assertFalse(line.contains("\n"), line);
            assertTrue(line.startsWith("reading " + f + ": JsonParseException: Unexpected character") && line.contains("(line 1, column "), line);
            return;
        }
        throw new AssertionError("the JSON parsed");
    }

    @Test
    void mainPrintsTheChainAndCatchesJtuneErrorsWithoutAStackTrace(@TempDir Path tmp) {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8);
        // a model directory without safetensors: the error names the directory and what is missing
        Path model = tmp.resolve("m");
        try {
            Files.createDirectories(model);
            Files.writeString(model.resolve("config.json"), "{\"model_type\": \"gemma3_text\", ");
        } catch (IOException x) {
            throw new UncheckedIOException(x);
        }
        int rc = Main.run(new String[] {"generate", "--model_path", model.toString(), "--prompt", "hi", "--device", "cpu"},
                new PrintStream(new ByteArrayOutputStream()), e);
        String text = err.toString(StandardCharsets.UTF_8);
        assertEquals(1, rc, text);
        assertTrue(text.startsWith("jtune: ") && text.contains(model.resolve("config.json").toString()) && text.strip().lines().count() == 1, text);
        assertFalse(text.contains("\tat "), text);
        // CUDA and kernel errors extend JtuneException too: one line with the hint, not a stack trace
        err.reset();
        CudaException cuda = new CudaException(CudaLibrary.DRIVER, "cuMemAlloc_v2", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory");
        assertEquals(1, Main.failure(new IllegalArgumentException("loading /m", cuda), e), "a wrapper around a jtune error");
        assertEquals(1, Main.failure(cuda, e));
        assertEquals(1, Main.failure(new KernelCompileException("flash.cu: error: expected ';'"), e));
        assertEquals("jtune: loading /m: cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory; hint: " + CudaException.OUT_OF_MEMORY_HINT + "\n"
                + "jtune: cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory; hint: " + CudaException.OUT_OF_MEMORY_HINT + "\n"
                + "jtune: flash.cu: error: expected ';'; hint: " + KernelCompileException.HINT + "\n",
                err.toString(StandardCharsets.UTF_8).replace("\r", ""));
        assertEquals(2, Main.failure(new dev.jtune.train.args.ArgsException("--x: bad"), e));
        RuntimeException bug = new IllegalStateException("a bug");
        assertEquals(bug, assertThrows(IllegalStateException.class, () -> Main.failure(bug, e)), "a bug keeps its stack trace");
        RuntimeException jdk = new IllegalArgumentException("not a jtune error");
        assertEquals(jdk, assertThrows(IllegalArgumentException.class, () -> Main.failure(jdk, e)),
                "only JtuneExceptions (and wrappers of one) are reported on one line");
    }

    @Test
    void cudaAndKernelErrorsReachingMainAreOneLineWithCauseAndHintAndExitNonZero() {
        CudaException oom = new CudaException(CudaLibrary.DRIVER, "cuMemAlloc_v2", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory");
        // what a failed allocation looks like after the engine wrapped it
        Failure wrapped = failure(new DeviceUnavailableException("cuda:0 is not available", oom), false);
        assertEquals(1, wrapped.rc());
        assertEquals("jtune: cuda:0 is not available: cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory; hint: "
                + CudaException.OUT_OF_MEMORY_HINT, wrapped.text().strip());
        assertEquals(1, wrapped.text().strip().lines().count(), wrapped.text());

        KernelCompileException compile = new KernelCompileException("NVRTC could not compile kernels/flash.cu for sm_90: error: x");
        Failure k = failure(compile, false);
        assertEquals(1, k.rc());
        assertEquals("jtune: NVRTC could not compile kernels/flash.cu for sm_90: error: x; hint: " + KernelCompileException.HINT, k.text().strip());
        assertTrue(KernelCompileException.HINT.contains("CUDA_HOME"), KernelCompileException.HINT);

        CudaException notOom = new CudaException(CudaLibrary.DRIVER, "cuLaunchKernel", 700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access");
        assertTrue(notOom.hint().isEmpty(), "only a failure with something to do carries a hint");
        assertEquals("jtune: cuLaunchKernel failed: CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory access", failure(notOom, false).text().strip());
    }

    @Test
    void debugPrintsTheStackTraceAfterTheLine() {
        KernelCompileException compile = new KernelCompileException("flash.cu: error: expected ';'");
        Failure plain = failure(compile, false);
        assertFalse(plain.text().contains("\tat "), plain.text());
        Failure debug = failure(compile, true);
        assertEquals(1, debug.rc());
        List<String> lines = debug.text().lines().toList();
        assertEquals("jtune: flash.cu: error: expected ';'; hint: " + KernelCompileException.HINT, lines.getFirst());
        assertTrue(lines.get(1).startsWith(KernelCompileException.class.getName()), debug.text());
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("\tat " + ErrorChainTest.class.getName())), debug.text());
    }

    @Test
    void debugIsAFlagOfEveryCommandAndShowsTheStackOfARealFailure(@TempDir Path tmp) throws IOException {
        Path model = tmp.resolve("m");
        Files.createDirectories(model);
        Files.writeString(model.resolve("config.json"), "{\"model_type\": \"gemma3_text\", ");
        String[] generate = {"generate", "--model_path", model.toString(), "--prompt", "hi", "--device", "cpu"};
        for (boolean debug : new boolean[] {false, true}) {
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            String[] args = debug ? java.util.stream.Stream.concat(java.util.stream.Stream.of("--debug"), java.util.Arrays.stream(generate)).toArray(String[]::new) : generate;
            int rc = Main.run(args, new PrintStream(new ByteArrayOutputStream()), new PrintStream(err, true, StandardCharsets.UTF_8));
            String text = err.toString(StandardCharsets.UTF_8);
            assertEquals(1, rc, text);
            assertTrue(text.startsWith("jtune: ") && text.contains(model.resolve("config.json").toString()), text);
            assertEquals(debug, text.contains("\tat dev.jtune."), "--debug " + debug + ": " + text);
        }
        for (String[] args : List.of(new String[] {"demo", "--size", "4", "--debug"}, new String[] {"--debug", "demo", "--size", "4"})) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            assertEquals(0, Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8)),
                    String.join(" ", args) + ": " + err.toString(StandardCharsets.UTF_8));
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        assertEquals(0, Main.run(new String[] {"help"}, new PrintStream(out, true, StandardCharsets.UTF_8), System.err));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("--debug"), "the overview documents --debug");
    }

    private record Failure(int rc, String text) {
    }

    private static Failure failure(RuntimeException e, boolean debug) {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = Main.failure(e, new PrintStream(err, true, StandardCharsets.UTF_8), debug);
        return new Failure(rc, err.toString(StandardCharsets.UTF_8).replace("\r", ""));
    }
}
