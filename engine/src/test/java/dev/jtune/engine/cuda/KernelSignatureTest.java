package dev.jtune.engine.cuda;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static dev.jtune.engine.cuda.KernelParam.F32;
import static dev.jtune.engine.cuda.KernelParam.F64;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.LAYOUT;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** A launch's arguments and a loaded kernel's parameters against the declared signature; NVRTC's options and cache key. */
class KernelSignatureTest {
    private static final KernelSignature BINARY = new KernelSignature("binary_f32", List.of(I32, PTR, LAYOUT, PTR, LAYOUT, PTR, I64));

    @Test
    void kernelArgsRecordTheKindOfEveryArgument() {
        try (KernelArgs args = new KernelArgs()) {
            args.i32(1).pointer(0x1000).layout(new long[] {4, 8}, new long[] {8, 1}).i64(2).f32(1f).f64(2.0);
            assertEquals(List.of(I32, PTR, LAYOUT, I64, F32, F64), args.kinds());
        }
    }

    @Test
    void aLaunchPassingTheDeclaredArgumentsPasses() {
        try (KernelArgs args = new KernelArgs()) {
            args.i32(0).pointer(1).layout(new long[] {1}, new long[] {1}).pointer(2).layout(new long[] {1}, new long[] {1})
                    .pointer(3).i64(1);
            BINARY.checkArguments(args.kinds());
        }
    }

    @Test
    void aLaunchWithAnotherKindNamesKernelIndexExpectedAndActual() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> BINARY.checkArguments(List.of(I32, PTR, LAYOUT, I64, LAYOUT, PTR, I64)));
        assertEquals("launch of kernel binary_f32: argument 3 is I64 (8 bytes), its signature declares PTR (8 bytes)", e.getMessage());
    }

    @Test
    void aLaunchWithAnotherCountNamesBoth() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> BINARY.checkArguments(List.of(I32, PTR)));
        assertEquals("launch of kernel binary_f32: 2 arguments passed, its signature declares 7 [I32 (4 bytes), PTR (8 bytes), "
                + "LAYOUT (136 bytes), PTR (8 bytes), LAYOUT (136 bytes), PTR (8 bytes), I64 (8 bytes)]", e.getMessage());
    }

    @Test
    void theDeviceSizesAreComparedInCountAndPerParameter() {
        assertNull(BINARY.deviceMismatch(List.of(4L, 8L, 136L, 8L, 136L, 8L, 8L)));
        assertEquals("kernel binary_f32 parameter 2 is 72 bytes, its signature declares LAYOUT (136 bytes)",
                BINARY.deviceMismatch(List.of(4L, 8L, 72L, 8L, 136L, 8L, 8L)));
        assertEquals("kernel binary_f32 takes 6 parameters, its signature declares 7 " + BINARY.params(),
                BINARY.deviceMismatch(List.of(4L, 8L, 136L, 8L, 136L, 8L)));
        // the load reads one parameter past the declared count to tell that a kernel takes more
        assertEquals("kernel binary_f32 takes more than 7 parameters, its signature declares 7 " + BINARY.params(),
                BINARY.deviceMismatch(List.of(4L, 8L, 136L, 8L, 136L, 8L, 8L, 4L)));
    }

    @Test
    void theLayoutParameterIsTheStructOfCommonCuh() {
        // int rank (padded to 8), i64 shape[JT_MAX_RANK], i64 stride[JT_MAX_RANK]
        assertEquals(8 + 2 * 8 * 8, LAYOUT.bytes);
    }

    @Test
    void nvrtcOptionsCarryEveryDefineSorted() {
        assertEquals(List.of("--gpu-architecture=sm_90", "--std=c++17", "-I/cuda/include", "-DA=1", "-DB=2"),
                KernelCompiler.options("sm_90", "/cuda/include", Map.of("B", "2", "A", "1")));
    }

    @Test
    void theCacheKeyChangesWithEveryInputTheCubinDependsOn() {
        Map<String, String> headers = Map.of("common.cuh", "// h");
        List<String> options = KernelCompiler.options("sm_90", "/inc", Map.of("CHUNK", "8"));
        String key = KernelCompiler.cacheKey("e.cu", "src", headers, options, "13.0");
        assertEquals(key, KernelCompiler.cacheKey("e.cu", "src", headers, KernelCompiler.options("sm_90", "/inc", Map.of("CHUNK", "8")), "13.0"));
        assertNotEquals(key, KernelCompiler.cacheKey("e.cu", "src", headers, KernelCompiler.options("sm_90", "/inc", Map.of("CHUNK", "4")), "13.0"),
                "a define's value");
        assertNotEquals(key, KernelCompiler.cacheKey("e.cu", "src", headers, KernelCompiler.options("sm_100", "/inc", Map.of("CHUNK", "8")), "13.0"),
                "the architecture");
        assertNotEquals(key, KernelCompiler.cacheKey("e.cu", "src2", headers, options, "13.0"), "the source");
        assertNotEquals(key, KernelCompiler.cacheKey("e.cu", "src", Map.of("common.cuh", "// h2"), options, "13.0"), "a header");
        assertNotEquals(key, KernelCompiler.cacheKey("e.cu", "src", headers, options, "13.1"), "the NVRTC version");
    }
}
