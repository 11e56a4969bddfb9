package dev.jtune.engine.cuda;

/**
 * The C type of one kernel parameter, as a launcher passes it ({@link KernelArgs}) and a kernel declares it
 * ({@link KernelSignature}). Its size is what the driver reports for the compiled parameter, which the module load
 * checks ({@code cuFuncGetParamInfo}); the kind itself is checked at every launch, so that a pointer never takes the
 * place of a count even where both are 8 bytes.
 */
enum KernelParam {
    /** A device pointer, any {@code T*} (0 for null). */
    PTR(8),
    /** {@code int}. */
    I32(4),
    /** {@code long long} ({@code i64}) or {@code unsigned long long}. */
    I64(8),
    /** {@code float}. */
    F32(4),
    /** {@code double}. */
    F64(8),
    /** The {@code Layout} struct of kernels/common.cuh by value ({@link StridedLayout}). */
    LAYOUT(StridedLayout.BYTES),
    /** A TMA descriptor ({@code CUtensorMap}, kernels' {@code const __grid_constant__ wg::TensorMap}) by value ({@link TensorMap}). */
    TENSOR_MAP(TensorMap.BYTES);

    final long bytes;

    KernelParam(long bytes) {
        this.bytes = bytes;
    }

    @Override
    public String toString() {
        return name() + " (" + bytes + " bytes)";
    }
}
