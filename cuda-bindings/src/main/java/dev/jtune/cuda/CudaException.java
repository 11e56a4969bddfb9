package dev.jtune.cuda;

import dev.jtune.JtuneException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;

import static java.lang.foreign.ValueLayout.ADDRESS;

/**
 * A CUDA driver, NVRTC, cuBLAS, cuBLASLt or NCCL call returned an error. The message reads like
 * {@code cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory}.
 * <p>
 * Callers pass every result through one of the static checks, which return normally on success. Error names
 * and texts come from the library itself (cuGetErrorName/cuGetErrorString, nvrtcGetErrorString,
 * cublas(Lt)GetStatusName/String, ncclGetErrorString); if that is impossible (the library is missing, or does not know the code)
 * the name falls back to the constant of that value in the bindings, and the text is left out. Out-of-memory
 * errors carry {@link #OUT_OF_MEMORY_HINT} as their {@link #hint()}.
 */
public final class CudaException extends JtuneException {
    /** What to do when the GPU runs out of memory. */
    public static final String OUT_OF_MEMORY_HINT = "lower --max_seq_length or --per_device_train_batch_size (raise "
            + "--gradient_accumulation_steps to keep the effective batch), turn on --gradient_checkpointing, or stop "
            + "other processes that use the GPU";

    private final CudaLibrary library;
    private final String function;
    private final int code;
    private final String errorName;
    private final String errorText;

    /**
     * @param errorName the library's name of {@code code}, or null if unknown
     * @param errorText the library's description of {@code code}, or null if unknown
     */
    public CudaException(CudaLibrary library, String function, int code, String errorName, String errorText) {
        super(message(function, code, errorName, errorText), null, outOfMemory(library, code) ? OUT_OF_MEMORY_HINT : null);
        this.library = library;
        this.function = function;
        this.code = code;
        this.errorName = errorName;
        this.errorText = errorText;
    }

    /** Throws unless {@code result} is {@code CUDA_SUCCESS}; {@code function} names the call for the message. */
    public static void check(int result, String function) {
        if (result != CudaDriver.CUDA_SUCCESS) {
            throw driverError(result, function);
        }
    }

    /** Throws unless {@code result} is {@code NVRTC_SUCCESS}. */
    public static void checkNvrtc(int result, String function) {
        if (result != Nvrtc.NVRTC_SUCCESS) {
            throw nvrtcError(result, function);
        }
    }

    /** Throws unless {@code result} is {@code CUBLAS_STATUS_SUCCESS}. */
    public static void checkCublas(int result, String function) {
        if (result != Cublas.CUBLAS_STATUS_SUCCESS) {
            throw cublasError(CudaLibrary.CUBLAS, result, function);
        }
    }

    /** Throws unless {@code result} is {@code CUBLAS_STATUS_SUCCESS} (cuBLASLt shares cuBLAS's status codes). */
    public static void checkCublasLt(int result, String function) {
        if (result != Cublas.CUBLAS_STATUS_SUCCESS) {
            throw cublasError(CudaLibrary.CUBLAS_LT, result, function);
        }
    }

    /** Throws unless {@code result} is {@code ncclSuccess}; {@code function} names the call (and, above, the rank). */
    public static void checkNccl(int result, String function) {
        if (result != Nccl.ncclSuccess) {
            throw ncclError(result, function);
        }
    }

    /** The library whose call failed. */
    public CudaLibrary library() {
        return library;
    }

    /** The call that failed, as the caller named it. */
    public String function() {
        return function;
    }

    /** The numeric result: a CUresult, nvrtcResult, cublasStatus_t or ncclResult_t. */
    public int code() {
        return code;
    }

    /** The code's name, e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}; null if unknown. */
    public String errorName() {
        return errorName;
    }

    /** The library's description of the code, e.g. "out of memory"; null if unknown. */
    public String errorText() {
        return errorText;
    }

    /**
     * Whether the call failed for lack of memory: {@code CUDA_ERROR_OUT_OF_MEMORY},
     * {@code NVRTC_ERROR_OUT_OF_MEMORY} or {@code CUBLAS_STATUS_ALLOC_FAILED}.
     */
    public boolean isOutOfMemory() {
        return outOfMemory(library, code);
    }

    private static boolean outOfMemory(CudaLibrary library, int code) {
        return switch (library) {
            case DRIVER -> code == CudaDriver.CUDA_ERROR_OUT_OF_MEMORY;
            case NVRTC -> code == Nvrtc.NVRTC_ERROR_OUT_OF_MEMORY;
            case CUBLAS, CUBLAS_LT -> code == Cublas.CUBLAS_STATUS_ALLOC_FAILED;
            case NCCL -> false; // NCCL reports a failed allocation as a system or CUDA error
        };
    }

    private static String message(String function, int code, String name, String text) {
        StringBuilder sb = new StringBuilder().append(function).append(" failed: ")
                .append(name == null ? "error" : name).append(" (").append(code).append(')');
        if (text != null && !text.isBlank() && !text.equals(name)) {
            sb.append(": ").append(text);
        }
        return sb.toString();
    }

    private static CudaException driverError(int code, String function) {
        String name = null;
        String text = null;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            if (CudaDriver.cuGetErrorName(code, out) == CudaDriver.CUDA_SUCCESS) {
                name = string(out.get(ADDRESS, 0));
            }
            out.set(ADDRESS, 0, MemorySegment.NULL);
            if (CudaDriver.cuGetErrorString(code, out) == CudaDriver.CUDA_SUCCESS) {
                text = string(out.get(ADDRESS, 0));
            }
        } catch (RuntimeException e) {
            // the driver cannot be reached: keep what we have and fall back below
        }
        return new CudaException(CudaLibrary.DRIVER, function, code,
                name != null ? name : constantName(CudaDriver.class, "CUDA_", code), text);
    }

    private static CudaException nvrtcError(int code, String function) {
        String name = null;
        try {
            // NVRTC has one string per code, and it is the code's name ("NVRTC_ERROR_COMPILATION")
            name = string(Nvrtc.nvrtcGetErrorString(code));
        } catch (RuntimeException e) {
            // NVRTC cannot be reached: fall back below
        }
        // for codes it does not know it answers "NVRTC_ERROR unknown": prefer our own constant's name then
        String known = constantName(Nvrtc.class, "NVRTC_", code);
        if (name == null || (known != null && !name.equals(known))) {
            name = known != null ? known : name;
        }
        return new CudaException(CudaLibrary.NVRTC, function, code, name, null);
    }

    private static CudaException cublasError(CudaLibrary library, int code, String function) {
        String name = null;
        String text = null;
        try {
            if (library == CudaLibrary.CUBLAS) {
                name = string(Cublas.cublasGetStatusName(code));
                text = string(Cublas.cublasGetStatusString(code));
            } else {
                name = string(CublasLt.cublasLtGetStatusName(code));
                text = string(CublasLt.cublasLtGetStatusString(code));
            }
        } catch (RuntimeException e) {
            // the library cannot be reached: fall back below
        }
        String known = constantName(Cublas.class, "CUBLAS_STATUS_", code);
        return new CudaException(library, function, code, name != null ? name : known, text);
    }

    private static CudaException ncclError(int code, String function) {
        String text = null;
        try {
            text = string(Nccl.ncclGetErrorString(code));
        } catch (RuntimeException e) {
            // NCCL cannot be reached: fall back below
        }
        String name = switch (code) { // ncclResult_t's names (other Nccl constants share the prefix and the values)
            case Nccl.ncclSuccess -> "ncclSuccess";
            case Nccl.ncclUnhandledCudaError -> "ncclUnhandledCudaError";
            case Nccl.ncclSystemError -> "ncclSystemError";
            case Nccl.ncclInternalError -> "ncclInternalError";
            case Nccl.ncclInvalidArgument -> "ncclInvalidArgument";
            case Nccl.ncclInvalidUsage -> "ncclInvalidUsage";
            case Nccl.ncclRemoteError -> "ncclRemoteError";
            case Nccl.ncclInProgress -> "ncclInProgress";
            case Nccl.ncclTimeout -> "ncclTimeout";
            default -> null;
        };
        return new CudaException(CudaLibrary.NCCL, function, code, name, text);
    }

    /** A NUL-terminated string returned by a library (static storage there); null for NULL. */
    private static String string(MemorySegment cString) {
        return cString == null || cString.equals(MemorySegment.NULL) ? null
                : cString.reinterpret(Long.MAX_VALUE).getString(0);
    }

    /** The name of the {@code public static final int} constant of {@code owner} with that prefix and value. */
    private static String constantName(Class<?> owner, String prefix, int value) {
        for (Field f : owner.getFields()) {
            int m = f.getModifiers();
            if (Modifier.isStatic(m) && Modifier.isFinal(m) && f.getType() == int.class && f.getName().startsWith(prefix)) {
                try {
                    if (f.getInt(null) == value) {
                        return f.getName();
                    }
                } catch (IllegalAccessException e) {
                    throw new AssertionError(e);
                }
            }
        }
        return null;
    }
}
