package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.jtune.cuda.CudaException.check;

/** A CUDA event: orders work across streams and times device work. */
public final class CudaEvent implements AutoCloseable {
    private final MemorySegment handle;

    public CudaEvent(boolean timing) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(CudaDriver.cuEventCreate(out, timing ? CudaDriver.CU_EVENT_DEFAULT : CudaDriver.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
            this.handle = out.get(ValueLayout.ADDRESS, 0);
        }
    }

    public MemorySegment handle() {
        return handle;
    }

    public void record(CudaStream stream) {
        check(CudaDriver.cuEventRecord(handle, stream.handle()), "cuEventRecord");
    }

    public void synchronize() {
        check(CudaDriver.cuEventSynchronize(handle), "cuEventSynchronize");
    }

    /** Whether the work before the last record is done (cuEventQuery), without waiting. */
    public boolean isDone() {
        int rc = CudaDriver.cuEventQuery(handle);
        if (rc == CudaDriver.CUDA_ERROR_NOT_READY) {
            return false;
        }
        check(rc, "cuEventQuery");
        return true;
    }

    /** Milliseconds between two recorded, completed events. */
    public static float elapsedMillis(CudaEvent start, CudaEvent end) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_FLOAT);
            check(CudaDriver.cuEventElapsedTime_v2(out, start.handle, end.handle), "cuEventElapsedTime_v2");
            return out.get(ValueLayout.JAVA_FLOAT, 0);
        }
    }

    @Override
    public void close() {
        check(CudaDriver.cuEventDestroy_v2(handle), "cuEventDestroy_v2");
    }
}
