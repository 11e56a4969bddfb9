package dev.jtune.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * NVRTC, the CUDA runtime compiler: {@code nvrtc.h} (CUDA 13), loaded from {@code libnvrtc.so.13} by
 * {@link NativeLibraries}.
 * <p>
 * Hand-written in jextract's shape (see {@link CudaDriver} for the type mapping). Results are the raw
 * {@code nvrtcResult}: pass them to {@link CudaException#checkNvrtc(int, String)}. No logic lives here.
 */
public final class Nvrtc {
    private Nvrtc() {
    }

    private static final CudaLibrary LIBRARY = CudaLibrary.NVRTC;

    // nvrtcResult
    public static final int NVRTC_SUCCESS = 0;
    public static final int NVRTC_ERROR_OUT_OF_MEMORY = 1;
    public static final int NVRTC_ERROR_PROGRAM_CREATION_FAILURE = 2;
    public static final int NVRTC_ERROR_INVALID_INPUT = 3;
    public static final int NVRTC_ERROR_INVALID_PROGRAM = 4;
    public static final int NVRTC_ERROR_INVALID_OPTION = 5;
    public static final int NVRTC_ERROR_COMPILATION = 6;
    public static final int NVRTC_ERROR_BUILTIN_OPERATION_FAILURE = 7;
    public static final int NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION = 8;
    public static final int NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION = 9;
    public static final int NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID = 10;
    public static final int NVRTC_ERROR_INTERNAL_ERROR = 11;
    public static final int NVRTC_ERROR_TIME_FILE_WRITE_FAILED = 12;
    public static final int NVRTC_ERROR_NO_PCH_CREATE_ATTEMPTED = 13;
    public static final int NVRTC_ERROR_PCH_CREATE_HEAP_EXHAUSTED = 14;
    public static final int NVRTC_ERROR_PCH_CREATE = 15;
    public static final int NVRTC_ERROR_CANCELLED = 16;

    private static final class nvrtcGetErrorString$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetErrorString",
                FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * const char *nvrtcGetErrorString(nvrtcResult result)
     * }
     */
    public static MemorySegment nvrtcGetErrorString(int result) {
        try {
            return (MemorySegment) nvrtcGetErrorString$.HANDLE.invokeExact(result);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcVersion$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcVersion",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcVersion(int *major, int *minor)
     * }
     */
    public static int nvrtcVersion(MemorySegment major, MemorySegment minor) {
        try {
            return (int) nvrtcVersion$.HANDLE.invokeExact(major, minor);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetNumSupportedArchs$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetNumSupportedArchs",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetNumSupportedArchs(int *numArchs)
     * }
     */
    public static int nvrtcGetNumSupportedArchs(MemorySegment numArchs) {
        try {
            return (int) nvrtcGetNumSupportedArchs$.HANDLE.invokeExact(numArchs);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetSupportedArchs$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetSupportedArchs",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetSupportedArchs(int *supportedArchs)
     * }
     */
    public static int nvrtcGetSupportedArchs(MemorySegment supportedArchs) {
        try {
            return (int) nvrtcGetSupportedArchs$.HANDLE.invokeExact(supportedArchs);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcCreateProgram$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcCreateProgram",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders, const char *const *headers, const char *const *includeNames)
     * }
     */
    public static int nvrtcCreateProgram(MemorySegment prog, MemorySegment src, MemorySegment name, int numHeaders, MemorySegment headers, MemorySegment includeNames) {
        try {
            return (int) nvrtcCreateProgram$.HANDLE.invokeExact(prog, src, name, numHeaders, headers, includeNames);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcDestroyProgram$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcDestroyProgram",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog)
     * }
     */
    public static int nvrtcDestroyProgram(MemorySegment prog) {
        try {
            return (int) nvrtcDestroyProgram$.HANDLE.invokeExact(prog);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcCompileProgram$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcCompileProgram",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char *const *options)
     * }
     */
    public static int nvrtcCompileProgram(MemorySegment prog, int numOptions, MemorySegment options) {
        try {
            return (int) nvrtcCompileProgram$.HANDLE.invokeExact(prog, numOptions, options);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetPTXSize$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetPTXSize",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet)
     * }
     */
    public static int nvrtcGetPTXSize(MemorySegment prog, MemorySegment ptxSizeRet) {
        try {
            return (int) nvrtcGetPTXSize$.HANDLE.invokeExact(prog, ptxSizeRet);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetPTX$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetPTX",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx)
     * }
     */
    public static int nvrtcGetPTX(MemorySegment prog, MemorySegment ptx) {
        try {
            return (int) nvrtcGetPTX$.HANDLE.invokeExact(prog, ptx);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetCUBINSize$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetCUBINSize",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet)
     * }
     */
    public static int nvrtcGetCUBINSize(MemorySegment prog, MemorySegment cubinSizeRet) {
        try {
            return (int) nvrtcGetCUBINSize$.HANDLE.invokeExact(prog, cubinSizeRet);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetCUBIN$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetCUBIN",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin)
     * }
     */
    public static int nvrtcGetCUBIN(MemorySegment prog, MemorySegment cubin) {
        try {
            return (int) nvrtcGetCUBIN$.HANDLE.invokeExact(prog, cubin);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetProgramLogSize$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetProgramLogSize",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet)
     * }
     */
    public static int nvrtcGetProgramLogSize(MemorySegment prog, MemorySegment logSizeRet) {
        try {
            return (int) nvrtcGetProgramLogSize$.HANDLE.invokeExact(prog, logSizeRet);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetProgramLog$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetProgramLog",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log)
     * }
     */
    public static int nvrtcGetProgramLog(MemorySegment prog, MemorySegment log) {
        try {
            return (int) nvrtcGetProgramLog$.HANDLE.invokeExact(prog, log);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcAddNameExpression$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcAddNameExpression",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcAddNameExpression(nvrtcProgram prog, const char *const name_expression)
     * }
     */
    public static int nvrtcAddNameExpression(MemorySegment prog, MemorySegment name_expression) {
        try {
            return (int) nvrtcAddNameExpression$.HANDLE.invokeExact(prog, name_expression);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class nvrtcGetLoweredName$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "nvrtcGetLoweredName",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * nvrtcResult nvrtcGetLoweredName(nvrtcProgram prog, const char *const name_expression, const char **lowered_name)
     * }
     */
    public static int nvrtcGetLoweredName(MemorySegment prog, MemorySegment name_expression, MemorySegment lowered_name) {
        try {
            return (int) nvrtcGetLoweredName$.HANDLE.invokeExact(prog, name_expression, lowered_name);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }
}
