package dev.jtune.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Library discovery, without a GPU: what is tried, in which order, and what a failure says. */
class NativeLibrariesTest {
    private static final String NONEXISTENT = "/nonexistent/libcuda.so.1";

    private static UnaryOperator<String> map(Map<String, String> values) {
        return values::get;
    }

    /** Either the load fails and lists every attempt, or it succeeds after the given failures. */
    private static List<String> attempts(CudaLibrary library, Map<String, String> properties, Map<String, String> environment) {
        try {
            return NativeLibraries.loadUncached(library, map(properties), map(environment)).failedAttempts();
        } catch (CudaLibraryNotFoundException e) {
            assertEquals(4, e.attempts().size(), e.getMessage());
            return e.attempts();
        }
    }

    @Test
    void explicitPropertyIsTriedFirst() {
        List<String> attempts = attempts(CudaLibrary.DRIVER, Map.of("jtune.cuda.driver.path", NONEXISTENT), Map.of());
        assertTrue(attempts.getFirst().contains("system property jtune.cuda.driver.path = " + NONEXISTENT), attempts.getFirst());
        assertTrue(attempts.getFirst().contains("no such file"), attempts.getFirst());
    }

    @Test
    void environmentVariableIsUsedWithoutTheProperty() {
        List<String> attempts = attempts(CudaLibrary.NVRTC, Map.of(), Map.of("JTUNE_CUDA_NVRTC_PATH", "/nonexistent/libnvrtc.so.13"));
        assertTrue(attempts.getFirst().contains("environment variable JTUNE_CUDA_NVRTC_PATH = /nonexistent/libnvrtc.so.13"),
                attempts.getFirst());
    }

    @Test
    void propertyWinsOverEnvironmentVariable() {
        List<String> attempts = attempts(CudaLibrary.CUBLAS_LT, Map.of("jtune.cuda.cublaslt.path", "/nonexistent/a.so"),
                Map.of("JTUNE_CUDA_CUBLASLT_PATH", "/nonexistent/b.so"));
        assertTrue(attempts.getFirst().contains("/nonexistent/a.so"), attempts.getFirst());
        assertFalse(String.join("\n", attempts).contains("/nonexistent/b.so"));
    }

    @Test
    void cudaHomeIsTriedAfterTheLoader() {
        assumeFalse(NativeLibraries.isAvailable(CudaLibrary.CUBLAS), "cuBLAS is installed here");
        CudaLibraryNotFoundException e = assertThrows(CudaLibraryNotFoundException.class, () ->
                NativeLibraries.loadUncached(CudaLibrary.CUBLAS, map(Map.of()), map(Map.of("CUDA_HOME", "/nonexistent/cuda"))));
        List<String> attempts = e.attempts();
        assertTrue(attempts.get(0).contains("not given"), attempts.get(0));
        assertTrue(attempts.get(1).contains("dynamic loader, by soname libcublas.so.13"), attempts.get(1));
        assertTrue(attempts.get(2).contains("/nonexistent/cuda/lib64/libcublas.so.13: no such file"), attempts.get(2));
        assertTrue(attempts.get(3).contains("/usr/local/cuda/lib64/libcublas.so.13"), attempts.get(3));
    }

    @Test
    void missingDriverListsAllFourAttempts() {
        assumeFalse(NativeLibraries.isAvailable(CudaLibrary.DRIVER), "this machine has libcuda.so.1");
        String previous = System.setProperty("jtune.cuda.driver.path", NONEXISTENT);
        try {
            CudaLibraryNotFoundException e = assertThrows(CudaLibraryNotFoundException.class,
                    () -> NativeLibraries.lookup(CudaLibrary.DRIVER));
            assertEquals(CudaLibrary.DRIVER, e.library());
            assertEquals(4, e.attempts().size(), e.getMessage());
            assertTrue(e.attempts().get(0).contains(NONEXISTENT), e.attempts().get(0));
            assertTrue(e.attempts().get(1).contains("libcuda.so.1"), e.attempts().get(1));
            assertTrue(e.attempts().get(2).contains("$CUDA_HOME/lib64/libcuda.so.1"), e.attempts().get(2));
            assertTrue(e.attempts().get(3).contains("/usr/local/cuda/lib64/libcuda.so.1"), e.attempts().get(3));
            String message = e.getMessage();
            for (int i = 0; i < 4; i++) {
                assertTrue(message.contains("\n  " + (i + 1) + ". " + e.attempts().get(i)), message);
            }
            assertTrue(message.startsWith("cannot load libcuda.so.1 (the CUDA driver)"), message);
            assertTrue(message.contains("install the NVIDIA driver"), message);
            assertTrue(message.contains("-Djtune.cuda.driver.path="), message);
            assertTrue(message.contains("JTUNE_CUDA_DRIVER_PATH"), message);
            assertTrue(e.hint().isPresent() && message.contains(e.hint().get()), "the hint is what the message ends with: " + e.hint());

            assertFalse(NativeLibraries.isAvailable(CudaLibrary.DRIVER));
            assertTrue(NativeLibraries.describe(CudaLibrary.DRIVER).contains("not loaded"));
        } finally {
            restore("jtune.cuda.driver.path", previous);
        }
    }

    @Test
    void callsWithoutTheLibraryThrowTheSameUncheckedExceptionEveryTime() {
        assumeFalse(NativeLibraries.isAvailable(CudaLibrary.DRIVER), "this machine has libcuda.so.1");
        // not an ExceptionInInitializerError on the first call and a NoClassDefFoundError on the next
        for (int i = 0; i < 2; i++) {
            CudaLibraryNotFoundException e = assertThrows(CudaLibraryNotFoundException.class, () -> CudaDriver.cuInit(0));
            assertEquals(CudaLibrary.DRIVER, e.library());
        }
    }

    /**
     * A 64-bit ELF header of a relocatable object (ET_REL), which dlopen refuses. It carries a non-executable
     * PT_GNU_STACK header only so that HotSpot does not warn about executable stacks while trying it.
     */
    private static byte[] unloadableElf() {
        ByteBuffer b = ByteBuffer.allocate(64 + 56).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {0x7f, 'E', 'L', 'F', 2, 1, 1, 0}).put(new byte[8]); // 64-bit, little-endian, version 1
        b.putShort((short) 1).putShort((short) 62).putInt(1);                 // ET_REL, x86-64, EV_CURRENT
        b.putLong(0).putLong(64).putLong(0).putInt(0);                           // entry, phoff, shoff, flags
        b.putShort((short) 64).putShort((short) 56).putShort((short) 1);         // ehsize, phentsize, phnum
        b.putShort((short) 0).putShort((short) 0).putShort((short) 0);          // no sections
        b.putInt(0x6474e551).putInt(6);                                         // PT_GNU_STACK, PF_R | PF_W
        return b.array();
    }

    @Test
    void aFileThatIsNotALibraryIsReported(@TempDir Path dir) throws IOException {
        Path fake = Files.write(dir.resolve("libnvrtc.so.13"), unloadableElf());
        List<String> attempts = attempts(CudaLibrary.NVRTC, Map.of("jtune.cuda.nvrtc.path", fake.toString()), Map.of());
        assertTrue(attempts.getFirst().contains("exists but cannot be loaded"), attempts.getFirst());
        // then the loader's own reason, which names the file: "<file>: only ET_DYN and ET_EXEC can be loaded"
        assertTrue(attempts.getFirst().contains("cannot be loaded: " + fake), attempts.getFirst());
    }

    @Test
    void aDirectoryIsReported(@TempDir Path dir) {
        List<String> attempts = attempts(CudaLibrary.CUBLAS, Map.of("jtune.cuda.cublas.path", dir.toString()), Map.of());
        assertTrue(attempts.getFirst().contains("is a directory"), attempts.getFirst());
    }

    /** Some shared library every Linux machine has, to stand in for a CUDA library that lacks a symbol. */
    private static Path someSystemLibrary() {
        for (String candidate : List.of("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/aarch64-linux-gnu/libm.so.6", "/usr/lib/aarch64-linux-gnu/libm.so.6", "/lib64/libm.so.6", "/usr/lib64/libm.so.6")) {
            if (Files.exists(Path.of(candidate))) {
                return Path.of(candidate);
            }
        }
        return null;
    }

    @Test
    void explicitPathLoadsAndAMissingSymbolNamesSymbolAndFile() throws Throwable {
        Path libm = someSystemLibrary();
        assumeTrue(libm != null, "no libm found");
        NativeLibraries.Loaded loaded = NativeLibraries.loadUncached(CudaLibrary.NVRTC,
                map(Map.of("jtune.cuda.nvrtc.path", libm.toString())), map(Map.of()));
        assertTrue(loaded.failedAttempts().isEmpty());
        assertTrue(loaded.origin().contains(libm.toString()) && loaded.origin().contains("system property"), loaded.origin());
        assertNotNull(NativeLibraries.find(loaded, "cos"));

        CudaSymbolNotFoundException e = assertThrows(CudaSymbolNotFoundException.class,
                () -> NativeLibraries.find(loaded, "nvrtcVersion"));
        assertEquals("nvrtcVersion", e.symbol());
        assertEquals(CudaLibrary.NVRTC, e.library());
        assertTrue(e.getMessage().contains("nvrtcVersion") && e.getMessage().contains(libm.toString()), e.getMessage());
    }

    @Test
    void anUnboundSymbolBecomesAThrowerOfTheSameType() {
        assumeFalse(NativeLibraries.isAvailable(CudaLibrary.DRIVER), "this machine has libcuda.so.1");
        FunctionDescriptor fd = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT);
        MethodHandle handle = NativeLibraries.downcall(CudaLibrary.DRIVER, "cuDeviceGet", fd);
        assertEquals(fd.toMethodType(), handle.type());
        assertThrows(CudaLibraryNotFoundException.class, () -> {
            int ignored = (int) handle.invokeExact(MemorySegment.NULL, 0);
        });
    }

    @Test
    void describeNeverThrows() {
        for (CudaLibrary library : CudaLibrary.values()) {
            String description = NativeLibraries.describe(library);
            assertTrue(description.startsWith(library.soname() + " ("), description);
            assertTrue(description.contains(NativeLibraries.isAvailable(library) ? ": loaded " : ": not loaded: "), description);
        }
    }

    @Test
    void namesFollowTheConvention() {
        assertEquals("jtune.cuda.cublaslt.path", CudaLibrary.CUBLAS_LT.propertyName());
        assertEquals("JTUNE_CUDA_CUBLASLT_PATH", CudaLibrary.CUBLAS_LT.environmentVariable());
        assertEquals("libcuda.so.1", CudaLibrary.DRIVER.soname());
        assertEquals("libnvrtc.so.13", CudaLibrary.NVRTC.soname());
        assertEquals("libcublas.so.13", CudaLibrary.CUBLAS.soname());
        assertEquals("libcublasLt.so.13", CudaLibrary.CUBLAS_LT.soname());
    }

    private static void restore(String property, String previous) {
        if (previous == null) {
            System.clearProperty(property);
        } else {
            System.setProperty(property, previous);
        }
    }
}
