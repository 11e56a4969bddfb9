package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.jtune.cuda.CudaException.check;

/** A CUDA stream (non-blocking with respect to the legacy default stream). */
public final class CudaStream implements AutoCloseable {
    private final MemorySegment handle;

    CudaStream() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(CudaDriver.cuStreamCreate(out, CudaDriver.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
            this.handle = out.get(ValueLayout.ADDRESS, 0);
        }
    }

    public MemorySegment handle() {
        return handle;
    }

    public void synchronize() {
        check(CudaDriver.cuStreamSynchronize(handle), "cuStreamSynchronize");
    }

    /** Makes later work on this stream wait for {@code event}. */
    public void waitFor(CudaEvent event) {
        check(CudaDriver.cuStreamWaitEvent(handle, event.handle(), 0), "cuStreamWaitEvent");
    }

    @Override
    public void close() {
        check(CudaDriver.cuStreamDestroy_v2(handle), "cuStreamDestroy_v2");
    }
}
