package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.jtune.cuda.CudaException.check;

/**
 * A loaded CUBIN and its kernels. Loading checks the launch contract: every kernel its {@link KernelSource} declares
 * exists and takes parameters of the declared count and sizes ({@code cuFuncGetParamInfo}); any disagreement fails
 * the load with every mismatch named, instead of a launch reading garbage later.
 */
public final class CudaModule {
    private final KernelSource source;
    private final Map<String, CudaFunction> functions;

    private CudaModule(KernelSource source, Map<String, CudaFunction> functions) {
        this.source = source;
        this.functions = functions;
    }

    static CudaModule load(CudaContext context, KernelSource source, byte[] cubin) {
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment image = arena.allocate(cubin.length + 1L, 16);
            MemorySegment.copy(cubin, 0, image, ValueLayout.JAVA_BYTE, 0, cubin.length);
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(CudaDriver.cuModuleLoadData(out, image), "cuModuleLoadData(" + source.file() + ")");
            MemorySegment module = out.get(ValueLayout.ADDRESS, 0);
            Map<String, CudaFunction> functions = new LinkedHashMap<>();
            List<String> problems = new ArrayList<>();
            for (KernelSignature signature : source.kernels().values()) {
                int rc = CudaDriver.cuModuleGetFunction(out, module, arena.allocateFrom(signature.name()));
                if (rc == CudaDriver.CUDA_ERROR_NOT_FOUND) {
                    problems.add("no kernel " + signature.name());
                    continue;
                }
                check(rc, "cuModuleGetFunction(" + source.file() + ": " + signature.name() + ")");
                MemorySegment function = out.get(ValueLayout.ADDRESS, 0);
                String mismatch = signature.deviceMismatch(parameterSizes(arena, function, signature));
                if (mismatch != null) {
                    problems.add(mismatch);
                }
                functions.put(signature.name(), new CudaFunction(signature, function));
            }
            if (!problems.isEmpty()) {
                throw new KernelCompileException("kernels/" + source.file() + " does not match its launch contract ("
                        + problems.size() + " problems):\n  " + String.join("\n  ", problems));
            }
            return new CudaModule(source, Map.copyOf(functions));
        }
    }

    /**
     * The sizes of {@code function}'s parameters, at most one more than {@code signature} declares (enough to tell
     * that it takes more): the driver answers CUDA_ERROR_INVALID_VALUE past the last one.
     */
    private static List<Long> parameterSizes(Arena arena, MemorySegment function, KernelSignature signature) {
        MemorySegment offset = arena.allocate(ValueLayout.JAVA_LONG);
        MemorySegment size = arena.allocate(ValueLayout.JAVA_LONG);
        List<Long> sizes = new ArrayList<>();
        for (int i = 0; i <= signature.params().size(); i++) {
            int rc = CudaDriver.cuFuncGetParamInfo(function, i, offset, size);
            if (rc == CudaDriver.CUDA_ERROR_INVALID_VALUE) {
                break;
            }
            check(rc, "cuFuncGetParamInfo(" + signature.name() + ", " + i + ")");
            sizes.add(size.get(ValueLayout.JAVA_LONG, 0));
        }
        return sizes;
    }

    /** The kernel {@code name}, which this module's {@link KernelSource} must declare. */
    public CudaFunction function(String name) {
        CudaFunction f = functions.get(name);
        if (f == null) {
            source.kernel(name); // throws: not declared
        }
        return f;
    }

    public String name() {
        return source.file();
    }
}
