package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;

import java.lang.foreign.MemorySegment;

import static dev.jtune.cuda.CudaException.check;

/**
 * One kernel of a module, checked against its declared {@link KernelSignature} when the module loaded; launched by
 * the typed kernel classes, whose arguments are checked against the same signature at every launch.
 */
public final class CudaFunction {
    private final KernelSignature signature;
    private final MemorySegment handle;

    CudaFunction(KernelSignature signature, MemorySegment handle) {
        this.signature = signature;
        this.handle = handle;
    }

    public String name() {
        return signature.name();
    }

    /** Launches a 1-D grid; {@code args} must list the kernel's parameters in order. */
    public void launch(CudaStream stream, long gridX, int blockX, int sharedBytes, KernelArgs args) {
        launch(stream, gridX, 1, blockX, 1, sharedBytes, args);
    }

    public void launch(CudaStream stream, long gridX, long gridY, int blockX, int blockY, int sharedBytes, KernelArgs args) {
        if (gridX <= 0 || gridX > Integer.MAX_VALUE || gridY <= 0 || gridY > 65535) {
            throw new IllegalArgumentException(name() + ": grid " + gridX + " x " + gridY + " is out of range");
        }
        signature.checkArguments(args.kinds());
        check(CudaDriver.cuLaunchKernel(handle, (int) gridX, (int) gridY, 1, blockX, blockY, 1, sharedBytes,
                stream.handle(), args.pack(), MemorySegment.NULL), "cuLaunchKernel(" + name() + ")");
    }

    /** Lets this kernel use more than 48 KiB of dynamic shared memory. */
    public void maxDynamicSharedMemory(int bytes) {
        check(CudaDriver.cuFuncSetAttribute(handle, CudaDriver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
                "cuFuncSetAttribute(" + name() + ")");
    }
}
