package dev.jtune.cuda;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static dev.jtune.cuda.CudaException.check;
import static dev.jtune.cuda.CudaException.checkNvrtc;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** NVRTC compiles a kernel for this GPU, the driver loads and launches it. */
@Tag("gpu")
class NvrtcGpuTest {
    private static final String SOURCE = """
            __device__ int answer = 42;
            extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) y[i] = a * x[i] + y[i];
            }
            template <typename T> __global__ void scale(T* p, T s, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) p[i] *= s;
            }
            """;

    @BeforeEach
    void current() {
        Gpu.makeCurrent();
    }

    /** A compiled program: the image (CUBIN or PTX, NUL-terminated for PTX) and scale<float>'s lowered name. */
    record Compiled(byte[] image, String scaleName) {
    }

    private static Compiled compile(Arena arena, String arch, boolean cubin) {
        MemorySegment progOut = arena.allocate(ADDRESS);
        checkNvrtc(Nvrtc.nvrtcCreateProgram(progOut, arena.allocateFrom(SOURCE), arena.allocateFrom("test.cu"), 0,
                MemorySegment.NULL, MemorySegment.NULL), "nvrtcCreateProgram");
        MemorySegment prog = progOut.get(ADDRESS, 0);
        try {
            checkNvrtc(Nvrtc.nvrtcAddNameExpression(prog, arena.allocateFrom("scale<float>")), "nvrtcAddNameExpression");
            List<String> options = List.of("--gpu-architecture=" + arch, "--std=c++17");
            MemorySegment opts = arena.allocate(ADDRESS, options.size());
            for (int i = 0; i < options.size(); i++) {
                opts.setAtIndex(ADDRESS, i, arena.allocateFrom(options.get(i)));
            }
            int rc = Nvrtc.nvrtcCompileProgram(prog, options.size(), opts);
            MemorySegment size = arena.allocate(JAVA_LONG);
            checkNvrtc(Nvrtc.nvrtcGetProgramLogSize(prog, size), "nvrtcGetProgramLogSize");
            MemorySegment log = arena.allocate(Math.max(1, size.get(JAVA_LONG, 0)));
            checkNvrtc(Nvrtc.nvrtcGetProgramLog(prog, log), "nvrtcGetProgramLog");
            checkNvrtc(rc, "nvrtcCompileProgram: " + log.getString(0));

            MemorySegment lowered = arena.allocate(ADDRESS);
            checkNvrtc(Nvrtc.nvrtcGetLoweredName(prog, arena.allocateFrom("scale<float>"), lowered), "nvrtcGetLoweredName");
            // the lowered name lives in the program: copy it before destroying it
            String scaleName = lowered.get(ADDRESS, 0).reinterpret(Long.MAX_VALUE).getString(0);

            MemorySegment image;
            if (cubin) {
                checkNvrtc(Nvrtc.nvrtcGetCUBINSize(prog, size), "nvrtcGetCUBINSize");
                image = arena.allocate(size.get(JAVA_LONG, 0));
                checkNvrtc(Nvrtc.nvrtcGetCUBIN(prog, image), "nvrtcGetCUBIN");
            } else {
                checkNvrtc(Nvrtc.nvrtcGetPTXSize(prog, size), "nvrtcGetPTXSize");
                image = arena.allocate(size.get(JAVA_LONG, 0));
                checkNvrtc(Nvrtc.nvrtcGetPTX(prog, image), "nvrtcGetPTX");
            }
            assertTrue(image.byteSize() > 0);
            return new Compiled(image.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), scaleName);
        } finally {
            checkNvrtc(Nvrtc.nvrtcDestroyProgram(progOut), "nvrtcDestroyProgram");
        }
    }

    @Test
    void versionAndArchitectures() {
        System.out.println(NativeLibraries.describe(CudaLibrary.NVRTC));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment major = arena.allocate(JAVA_INT);
            MemorySegment minor = arena.allocate(JAVA_INT);
            checkNvrtc(Nvrtc.nvrtcVersion(major, minor), "nvrtcVersion");
            assertEquals(13, major.get(JAVA_INT, 0));
            MemorySegment count = arena.allocate(JAVA_INT);
            checkNvrtc(Nvrtc.nvrtcGetNumSupportedArchs(count), "nvrtcGetNumSupportedArchs");
            MemorySegment archs = arena.allocate(JAVA_INT, count.get(JAVA_INT, 0));
            checkNvrtc(Nvrtc.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs");
            int want = Integer.parseInt(Gpu.arch().substring(3));
            boolean found = false;
            for (int a : archs.toArray(JAVA_INT)) {
                found |= a == want;
            }
            assertTrue(found, "NVRTC cannot target " + Gpu.arch());
            assertEquals("NVRTC_ERROR_COMPILATION", Nvrtc.nvrtcGetErrorString(Nvrtc.NVRTC_ERROR_COMPILATION)
                    .reinterpret(Long.MAX_VALUE).getString(0));
        }
    }

    @Test
    void compileErrorIsReported() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment progOut = arena.allocate(ADDRESS);
            checkNvrtc(Nvrtc.nvrtcCreateProgram(progOut, arena.allocateFrom("__global__ void broken( {"),
                    arena.allocateFrom("broken.cu"), 0, MemorySegment.NULL, MemorySegment.NULL), "nvrtcCreateProgram");
            int rc = Nvrtc.nvrtcCompileProgram(progOut.get(ADDRESS, 0), 0, MemorySegment.NULL);
            CudaException e = assertThrows(CudaException.class, () -> checkNvrtc(rc, "nvrtcCompileProgram"));
            assertEquals("nvrtcCompileProgram failed: NVRTC_ERROR_COMPILATION (6)", e.getMessage());
            checkNvrtc(Nvrtc.nvrtcDestroyProgram(progOut), "nvrtcDestroyProgram");
        }
    }

    @Test
    void cubinLoadsAndLaunches() {
        try (Arena arena = Arena.ofConfined()) {
            Compiled compiled = compile(arena, Gpu.arch(), true);
            run(arena, compiled);
        }
    }

    @Test
    void ptxIsJitCompiledByTheDriver() {
        try (Arena arena = Arena.ofConfined()) {
            Compiled compiled = compile(arena, "compute_" + Gpu.arch().substring(3), false);
            assertTrue(new String(compiled.image(), 0, 200).contains(".version"), "not PTX");
            run(arena, compiled);
        }
    }

    /**
     * Issue 14's probe: NVRTC targets sm_90a (the architecture-specific features wgmma and setmaxnreg need) straight to
     * CUBIN, and the driver loads it: a kernel that fences the warpgroup's matrix operations compiles for sm_90a.
     * Hopper only (skipped elsewhere).
     */
    @Test
    void hopperArchSpecificTargetCompilesAWgmmaFence() {
        org.junit.jupiter.api.Assumptions.assumeTrue(Gpu.arch().equals("sm_90"), "sm_90a is Hopper's: this is " + Gpu.arch());
        String source = """
                extern "C" __global__ void fence(int* p) {
                    asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); // one instruction: no newline needed in the asm string
                    if (threadIdx.x == 0) p[0] = 1;
                }
                """;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment progOut = arena.allocate(ADDRESS);
            checkNvrtc(Nvrtc.nvrtcCreateProgram(progOut, arena.allocateFrom(source), arena.allocateFrom("fence.cu"), 0,
                    MemorySegment.NULL, MemorySegment.NULL), "nvrtcCreateProgram");
            MemorySegment prog = progOut.get(ADDRESS, 0);
            try {
                MemorySegment opts = arena.allocate(ADDRESS, 1);
                opts.setAtIndex(ADDRESS, 0, arena.allocateFrom("--gpu-architecture=sm_90a"));
                int rc = Nvrtc.nvrtcCompileProgram(prog, 1, opts);
                MemorySegment size = arena.allocate(JAVA_LONG);
                checkNvrtc(Nvrtc.nvrtcGetProgramLogSize(prog, size), "nvrtcGetProgramLogSize");
                MemorySegment log = arena.allocate(Math.max(1, size.get(JAVA_LONG, 0)));
                checkNvrtc(Nvrtc.nvrtcGetProgramLog(prog, log), "nvrtcGetProgramLog");
                checkNvrtc(rc, "nvrtcCompileProgram (sm_90a): " + log.getString(0));
                checkNvrtc(Nvrtc.nvrtcGetCUBINSize(prog, size), "nvrtcGetCUBINSize");
                MemorySegment image = arena.allocate(size.get(JAVA_LONG, 0));
                checkNvrtc(Nvrtc.nvrtcGetCUBIN(prog, image), "nvrtcGetCUBIN");
                MemorySegment out = arena.allocate(ADDRESS);
                check(CudaDriver.cuModuleLoadData(out, image), "cuModuleLoadData (sm_90a)");
                MemorySegment module = out.get(ADDRESS, 0);
                check(CudaDriver.cuModuleGetFunction(out, module, arena.allocateFrom("fence")), "cuModuleGetFunction(fence)");
                check(CudaDriver.cuModuleUnload(module), "cuModuleUnload");
            } finally {
                checkNvrtc(Nvrtc.nvrtcDestroyProgram(progOut), "nvrtcDestroyProgram");
            }
        }
    }

    private static void run(Arena arena, Compiled compiled) {
        MemorySegment out = arena.allocate(ADDRESS);
        check(CudaDriver.cuModuleLoadData(out, arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_BYTE, compiled.image())),
                "cuModuleLoadData");
        MemorySegment module = out.get(ADDRESS, 0);
        try {
            check(CudaDriver.cuModuleGetFunction(out, module, arena.allocateFrom("saxpy")), "cuModuleGetFunction(saxpy)");
            MemorySegment saxpy = out.get(ADDRESS, 0);
            check(CudaDriver.cuModuleGetFunction(out, module, arena.allocateFrom(compiled.scaleName())), "cuModuleGetFunction(scale)");
            MemorySegment scale = out.get(ADDRESS, 0);
            assertFalse(compiled.scaleName().equals("scale<float>"), "lowered name " + compiled.scaleName());

            MemorySegment global = arena.allocate(JAVA_LONG);
            MemorySegment globalSize = arena.allocate(JAVA_LONG);
            check(CudaDriver.cuModuleGetGlobal_v2(global, globalSize, module, arena.allocateFrom("answer")), "cuModuleGetGlobal_v2");
            assertEquals(4, globalSize.get(JAVA_LONG, 0));
            assertEquals(42, Gpu.download(global.get(JAVA_LONG, 0), 4, arena).get(JAVA_INT, 0));

            MemorySegment attr = arena.allocate(JAVA_INT);
            check(CudaDriver.cuFuncGetAttribute(attr, CudaDriver.CU_FUNC_ATTRIBUTE_NUM_REGS, saxpy), "cuFuncGetAttribute");
            assertTrue(attr.get(JAVA_INT, 0) > 0);
            check(CudaDriver.cuFuncGetAttribute(attr, CudaDriver.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, saxpy), "cuFuncGetAttribute");
            assertTrue(attr.get(JAVA_INT, 0) >= 256);
            check(CudaDriver.cuFuncGetAttribute(attr, CudaDriver.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, saxpy), "cuFuncGetAttribute");
            assertEquals(0, attr.get(JAVA_INT, 0));
            check(CudaDriver.cuFuncSetAttribute(saxpy, CudaDriver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 64 << 10),
                    "cuFuncSetAttribute");
            check(CudaDriver.cuFuncGetAttribute(attr, CudaDriver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, saxpy), "cuFuncGetAttribute");
            assertEquals(64 << 10, attr.get(JAVA_INT, 0));
            // saxpy(float a, const float* x, float* y, int n): sizes 4, 8, 8, 4 at offsets 0, 8, 16, 24; none past the last
            MemorySegment offset = arena.allocate(JAVA_LONG);
            MemorySegment size = arena.allocate(JAVA_LONG);
            long[] sizes = {4, 8, 8, 4};
            long[] offsets = {0, 8, 16, 24};
            for (int i = 0; i < sizes.length; i++) {
                check(CudaDriver.cuFuncGetParamInfo(saxpy, i, offset, size), "cuFuncGetParamInfo(" + i + ")");
                assertEquals(sizes[i], size.get(JAVA_LONG, 0), "size of parameter " + i);
                assertEquals(offsets[i], offset.get(JAVA_LONG, 0), "offset of parameter " + i);
            }
            assertEquals(CudaDriver.CUDA_ERROR_INVALID_VALUE, CudaDriver.cuFuncGetParamInfo(saxpy, sizes.length, offset, size));
            check(CudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor(attr, saxpy, 256, 0L), "cuOccupancyMaxActiveBlocksPerMultiprocessor");
            assertTrue(attr.get(JAVA_INT, 0) > 0);

            int n = 100_000;
            float[] x = new float[n];
            float[] y = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = i;
                y[i] = 1000 - i;
            }
            long dx = Gpu.malloc(4L * n);
            long dy = Gpu.malloc(4L * n);
            MemorySegment stream = Gpu.createStream();
            try {
                Gpu.upload(dx, arena.allocateFrom(JAVA_FLOAT, x));
                Gpu.upload(dy, arena.allocateFrom(JAVA_FLOAT, y));
                // kernelParams: an array of pointers, one to each argument's value
                MemorySegment params = arena.allocate(ADDRESS, 4);
                params.setAtIndex(ADDRESS, 0, arena.allocateFrom(JAVA_FLOAT, 2f));
                params.setAtIndex(ADDRESS, 1, arena.allocateFrom(JAVA_LONG, dx));
                params.setAtIndex(ADDRESS, 2, arena.allocateFrom(JAVA_LONG, dy));
                params.setAtIndex(ADDRESS, 3, arena.allocateFrom(JAVA_INT, n));
                int block = 256;
                int grid = (n + block - 1) / block;
                check(CudaDriver.cuLaunchKernel(saxpy, grid, 1, 1, block, 1, 1, 0, stream, params, MemorySegment.NULL), "cuLaunchKernel(saxpy)");
                MemorySegment scaleParams = arena.allocate(ADDRESS, 3);
                scaleParams.setAtIndex(ADDRESS, 0, arena.allocateFrom(JAVA_LONG, dy));
                scaleParams.setAtIndex(ADDRESS, 1, arena.allocateFrom(JAVA_FLOAT, 0.5f));
                scaleParams.setAtIndex(ADDRESS, 2, arena.allocateFrom(JAVA_INT, n));
                check(CudaDriver.cuLaunchKernel(scale, grid, 1, 1, block, 1, 1, 0, stream, scaleParams, MemorySegment.NULL), "cuLaunchKernel(scale)");
                check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
                float[] result = Gpu.download(dy, 4L * n, arena).toArray(JAVA_FLOAT);
                for (int i = 0; i < n; i++) {
                    assertEquals((2f * x[i] + (1000 - i)) * 0.5f, result[i], "y[" + i + "]");
                }
            } finally {
                check(CudaDriver.cuStreamDestroy_v2(stream), "cuStreamDestroy_v2");
                Gpu.free(dx);
                Gpu.free(dy);
            }
        } finally {
            check(CudaDriver.cuModuleUnload(module), "cuModuleUnload");
        }
    }
}
