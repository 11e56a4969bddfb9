package dev.jtune.engine.backend;

import dev.jtune.engine.ReduceOp;
import dev.jtune.engine.BinaryOp;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Storage;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.memory.MemoryStats;

import java.lang.foreign.MemorySegment;

/**
 * What a device must implement: its primitives. Ops are written once, in {@link dev.jtune.engine.Ops} and the fused
 * ops of {@code dev.jtune.engine.ops}: they validate shapes and dtypes, allocate outputs and broadcast, so a backend
 * receives only well-formed arguments as documented on each method and does nothing but compute. Fused ops (RMSNorm,
 * attention, cross-entropy, ...) are not methods here: each registers its cpu reference, cuda launcher and meta rule
 * once as a {@link FusedOp}, reached through {@link #kernels}. Every method may be asynchronous with respect to the
 * host except {@link #copyToHost} and {@link #synchronize}.
 */
public interface Backend {

    Device device();

    /** Human-readable: "cpu", "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)". */
    String description();

    /** Allocates {@code bytes} (> 0) of uninitialized memory; the caller hands it to a scope. */
    Storage allocate(long bytes, MemoryCategory category);

    /**
     * Allocates {@code bytes} (> 0) of uninitialized host memory that this device's kernels read and write in place
     * ({@link dev.jtune.engine.Placement#HOST_MAPPED}: page-locked and mapped on cuda, never managed memory; plain host
     * memory on cpu; simulated on meta). Counted in {@link MemoryStats#host()}, never in the device figures. The caller
     * hands it to a scope.
     */
    Storage allocateHostMapped(long bytes, MemoryCategory category);

    /** Copies {@code dst.numel()} packed elements of {@code dst.dtype()} from host memory into contiguous {@code dst}. */
    void copyFromHost(MemorySegment src, Tensor dst);

    /** Copies contiguous {@code src} into host memory as packed elements; returns when the data is there. */
    void copyToHost(Tensor src, MemorySegment dst);

    /**
     * Element-wise copy between two tensors of this device with equal shapes and any strides; converts dtypes
     * (floats round to nearest even, floats to integers truncate toward zero and saturate).
     */
    void copy(Tensor src, Tensor dst);

    /** Sets every element of contiguous {@code dst} to {@code value} (rounded to its dtype). */
    void fill(Tensor dst, double value);

    /**
     * Fills contiguous floating {@code dst} from the counter-based generator of {@link CounterRng}, so that the
     * same seed gives the same values on every backend.
     */
    void fillRandom(Tensor dst, Distribution distribution, long seed, double p0, double p1);

    /**
     * {@code dst += src} with src converted to dst's dtype: floating tensors of equal shapes, src any strides, dst
     * contiguous; the sum is formed as {@link #binary} forms it in dst's dtype, so it equals casting src and adding,
     * without the converted copy (a 16-bit gradient into an fp32 one).
     */
    void accumulate(Tensor src, Tensor dst);

    /** {@code out = a op b}; {@code a} and {@code b} have out's shape (stride 0 where broadcast), out is contiguous; one floating dtype. */
    void binary(BinaryOp op, Tensor a, Tensor b, Tensor out);

    /** {@code out = a * factor}; {@code a} has out's shape and any strides, out is contiguous; one floating dtype. */
    void scale(Tensor a, double factor, Tensor out);

    /**
     * Reduces contiguous {@code a} along {@code axis} into contiguous {@code out} (a's shape without that axis, or
     * with it set to 1); accumulates in fp32 (fp64 for F64); one floating dtype.
     */
    void reduce(ReduceOp op, Tensor a, int axis, Tensor out);

    /** {@link #matmul(Tensor, boolean, Tensor, boolean, Tensor, double, boolean)} with alpha 1. */
    default void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, boolean accumulate) {
        matmul(a, transA, b, transB, out, 1.0, accumulate);
    }

    /**
     * {@code out[b] = alpha * op(a[b]) @ op(b[b])} (or {@code +=} when {@code accumulate}) with fp32 accumulation; the
     * product is scaled in the accumulator, before the one rounding to out's dtype (cuBLAS's alpha).
     * {@code a} is contiguous [batch..., M, K], or [batch..., K, M] when {@code transA}; {@code b} is contiguous
     * [batch..., K, N] ([..., N, K] when {@code transB}) with a's batch dimensions, or 2-D and shared by every
     * batch; {@code out} is contiguous [batch..., M, N]. a and b share a floating dtype; out has that dtype or F32.
     * A 2-D operand, out included, may instead be row-strided (last stride 1, row stride at least its columns: a
     * column slice of a wider matrix, as a fused projection's parts are). Operands may start anywhere in their storage
     * (slices), so alignment is not assumed.
     */
    void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, double alpha, boolean accumulate);

    /**
     * The generic kernel hook: this device's implementation of a fused op ({@link FusedOp#cpu}, {@link FusedOp#meta},
     * or the cuda launcher built once per GPU), ready to launch (the cuda backend makes its context current).
     */
    <K> K kernels(FusedOp<K> op);

    /** Waits until all work queued on this device is done. */
    void synchronize();

    MemoryStats memoryStats();

    /** Restarts every peak (device, per category, host-mapped) from what is allocated now. */
    void resetPeaks();

    /** Returns cached, unused memory to the device. */
    void emptyCache();
}
