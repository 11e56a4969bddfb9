package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.cuda.CudaException;
import dev.jtune.cuda.CudaLibrary;
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

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
    void mainPrintsTheChainAndCatchesCudaErrorsWithoutAStackTrace(@TempDir Path tmp) {
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
        // CUDA and kernel errors are not EngineExceptions: they must still be one line, not a stack trace
        err.reset();
        CudaException cuda = new CudaException(CudaLibrary.DRIVER, "cuMemAlloc_v2", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory");
        assertEquals(1, Main.failure(new IllegalArgumentException("loading /m", cuda), e));
        assertEquals(1, Main.failure(cuda, e));
        assertEquals(1, Main.failure(new dev.jtune.engine.cuda.KernelCompileException("flash.cu: error: expected ';'"), e));
        assertEquals("""
                jtune: loading /m: cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory
                jtune: cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory
                jtune: flash.cu: error: expected ';'
                """, err.toString(StandardCharsets.UTF_8).replace("\r", ""));
        assertEquals(2, Main.failure(new dev.jtune.train.args.ArgsException("--x: bad"), e));
        RuntimeException bug = new IllegalStateException("a bug");
        assertEquals(bug, org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, () -> Main.failure(bug, e)),
                "a bug keeps its stack trace");
    }
}
