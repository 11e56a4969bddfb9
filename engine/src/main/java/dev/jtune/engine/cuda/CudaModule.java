package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static dev.jtune.cuda.CudaException.check;

/** A loaded CUBIN and its kernels, looked up by name once. */
public final class CudaModule {
    private final CudaContext context;
    private final String name;
    private final MemorySegment handle;
    private final Map<String, CudaFunction> functions = new ConcurrentHashMap<>();

    private CudaModule(CudaContext context, String name, MemorySegment handle) {
        this.context = context;
        this.name = name;
        this.handle = handle;
    }

    static CudaModule load(CudaContext context, String name, byte[] cubin) {
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment image = arena.allocate(cubin.length + 1L, 16);
            MemorySegment.copy(cubin, 0, image, ValueLayout.JAVA_BYTE, 0, cubin.length);
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(CudaDriver.cuModuleLoadData(out, image), "cuModuleLoadData(" + name + ")");
            return new CudaModule(context, name, out.get(ValueLayout.ADDRESS, 0));
        }
    }

    public CudaFunction function(String kernel) {
        return functions.computeIfAbsent(kernel, k -> {
            context.makeCurrent();
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
                check(CudaDriver.cuModuleGetFunction(out, handle, arena.allocateFrom(k)), "cuModuleGetFunction(" + name + ": " + k + ")");
                return new CudaFunction(k, out.get(ValueLayout.ADDRESS, 0));
            }
        });
    }

    public String name() {
        return name;
    }
}
