package dev.jtune.engine.backend;

import dev.jtune.engine.DType;
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

    /** {@code out = a op b}; {@code a} and {@code b} have out's shape (stride 0 where broadcast), out is contiguous; one floating dtype. */
    void binary(BinaryOp op, Tensor a, Tensor b, Tensor out);

    /** {@code out = a * factor}; {@code a} has out's shape and any strides, out is contiguous; one floating dtype. */
    void scale(Tensor a, double factor, Tensor out);

    /**
     * Reduces contiguous {@code a} along {@code axis} into contiguous {@code out} (a's shape without that axis, or
     * with it set to 1); accumulates in fp32 (fp64 for F64); one floating dtype.
     */
    void reduce(ReduceOp op, Tensor a, int axis, Tensor out);

    /**
     * {@code out[b] = op(a[b]) @ op(b[b])} (or {@code +=} when {@code accumulate}) with fp32 accumulation.
     * {@code a} is contiguous [batch..., M, K], or [batch..., K, M] when {@code transA}; {@code b} is contiguous
     * [batch..., K, N] ([..., N, K] when {@code transB}) with a's batch dimensions, or 2-D and shared by every
     * batch; {@code out} is contiguous [batch..., M, N]. a and b share a floating dtype; out has that dtype or F32.
     * Operands may start anywhere in their storage (slices), so alignment is not assumed.
     */
    void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, boolean accumulate);

    /**
     * The generic kernel hook: this device's implementation of a fused op ({@link FusedOp#cpu}, {@link FusedOp#meta},
     * or the cuda launcher built once per GPU), ready to launch (the cuda backend makes its context current).
     */
    <K> K kernels(FusedOp<K> op);

    // ------------------------------------------------------------------ fused ops of a training step
    // Unless said otherwise: every tensor is contiguous, float math is fp32 (fp64 for F64 tensors), an output
    // is written entirely (no read of its old contents), and an output may be the very tensor of an input of
    // the same shape and dtype (in place) only where the method says so. Where a statistic or accumulator is
    // documented as F32 (rstd, lse, loss rows, scores, gradient sums), F64 inputs come with F64 ones instead, so
    // that float64 gradient checks see no fp32 rounding; the cpu backend must honour that, cuda may refuse it.

    /**
     * Cross-entropy per row, never copying the logits to fp32: logits [N, V] (any float dtype), labels I32 [N];
     * {@code lse[i] = log sum_v exp(logits[i, v])} and {@code loss[i] = lse[i] - logits[i, labels[i]]}, both
     * F32 [N]; a row whose label is {@code ignoreIndex} gets loss 0 (its lse is still written).
     */
    void crossEntropy(Tensor logits, Tensor labels, int ignoreIndex, Tensor loss, Tensor lse);

    /**
     * {@code gradLogits[i, v] = scale[0] * (exp(logits[i, v] - lse[i]) - (v == labels[i]))}, and 0 on ignored rows.
     * scale is an F32 [1] tensor on this device (so the loss normalisation needs no host sync); gradLogits
     * [N, V] in logits' dtype, may be logits.
     */
    void crossEntropyBackward(Tensor logits, Tensor labels, Tensor lse, int ignoreIndex, Tensor scale, Tensor gradLogits);

    /** {@code out[0] = number of i with labels[i] != value}, as F32 [1]. labels I32 [N]. */
    void countNotEqual(Tensor labels, int value, Tensor out);

    /**
     * The masked softmax of one block of attention scores. scores F32 [R, C]: row r is query position
     * {@code rowStart + r % rowsPerHead} (rows of several heads may be stacked, {@code rowsPerHead} each), column c
     * is key position {@code colStart + c}. Key k is visible to query q when {@code k <= q} and, when
     * {@code window > 0}, {@code q - k < window}. probs [R, C] (any float dtype) = exp(scale * s - lse) on
     * visible entries, 0 elsewhere; lse F32 [R] = log sum over visible of exp(scale * s) (-inf when none is
     * visible, and then the row of probs is 0). When {@code lseIn}, lse is read (saved by the forward) instead
     * of written.
     */
    void attentionSoftmax(Tensor scores, long rowStart, long rowsPerHead, long colStart, long window, double scale,
                          Tensor probs, Tensor lse, boolean lseIn);

    /**
     * {@code gradScores[r, c] = scale * probs[r, c] * (gradProbs[r, c] - delta[r])}; probs [R, C] (any float dtype),
     * gradProbs F32 [R, C], delta F32 [R], gradScores [R, C] (any float dtype); gradScores may be probs (the
     * attention op overwrites the probabilities with their gradient to save memory).
     */
    void attentionSoftmaxBackward(Tensor probs, Tensor gradProbs, Tensor delta, double scale, Tensor gradScores);

    /** {@code out[r] = sum_c a[r, c] * b[r, c]} in fp32; a, b [R, C] of one float dtype; out F32 [R]. */
    void rowDot(Tensor a, Tensor b, Tensor out);

    /**
     * Whether {@link #fusedAttention} runs here for q of {@code dtype} and head size {@code headDim} in one kernel;
     * when not, the attention op runs its blocked path (products and {@link #attentionSoftmax} per query block).
     */
    default boolean hasFusedAttention(DType dtype, long headDim) {
        return false;
    }

    /**
     * Whole causal attention in one call. q [B, Hq, T, D], k and v [B, Hkv, T, D], contiguous, of one float dtype;
     * query head h reads key/value head {@code h / (Hq / Hkv)}; key j is visible to query i when {@code j <= i} and,
     * when {@code window > 0}, {@code i - j < window}. out [B, Hq, T, D] in q's dtype = softmax over the visible
     * keys of {@code scale q.k}, times v; lse F32 [B, Hq, T] = log sum over visible keys of exp(scale q.k). Backends
     * without a fused kernel compute it as a plain reference (the cpu, in double precision).
     */
    void fusedAttention(Tensor q, Tensor k, Tensor v, long window, double scale, Tensor out, Tensor lse);

    /**
     * Backward of {@link #fusedAttention}: with {@code p = exp(scale q.k - lse)} on visible pairs,
     * {@code gradV = p^T gradOut}, {@code dS = p (gradOut.v - delta) scale}, {@code gradQ = dS k},
     * {@code gradK = dS^T q}; delta F32 [B, Hq, T] is the row dot product of gradOut and out. gradQ, gradK, gradV
     * contiguous in the inputs' dtype, each fully written (gradK and gradV sum over a key/value head's query heads).
     */
    void fusedAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor gradOut, Tensor lse, Tensor delta, long window,
                                double scale, Tensor gradQ, Tensor gradK, Tensor gradV);

    /**
     * One step of torch.optim.AdamW on tensors of one shape: param (float dtype, updated in place), grad (param's
     * dtype or F32), m and v F32 (updated in place). The gradient is first multiplied by {@code gradScale[0]}
     * when gradScale (F32 [1] on this device) is not null.
     */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale);

    /** {@code out[0] += sum of x^2} over all elements (fp32 accumulation; fp64 for F64); out F32 [1]. */
    void sumOfSquares(Tensor x, Tensor out);

    /** {@code coef[0] = min(1, maxNorm / (sqrt(sumOfSquares[0]) + 1e-6))}, torch's clip_grad_norm_ factor; F32 [1]. */
    void clipCoefficient(Tensor sumOfSquares, double maxNorm, Tensor coef);

    /**
     * NF4 dequantization (bitsandbytes' 4-bit NormalFloat, blocks of 64; see {@code quant.Nf4}), n = out.numel().
     * codes U8 [ceil(n/2)]: element 2k in the high nibble of byte k, 2k+1 in the low one. The scale of block b
     * (elements [64b, 64b + 64)) is absmax[b], absmax F32 [ceil(n/64)]; or, double-quantized (absmax null),
     * {@code fp32(fp32(dyn[absmaxCodes[b]] * absmax2[b / 256]) + offset)} with absmaxCodes U8 [ceil(n/64)], absmax2
     * F32 [ceil(n/64/256)] and dyn bitsandbytes' signed dynamic map ({@code Nf4.dynamicMap()}). Exactly one of
     * absmax and (absmaxCodes, absmax2) is given. {@code out[i] = fp32(CODES[code_i] * scale)} rounded once to out's
     * dtype (BF16, F16 or F32); every step is one fp32 operation (no fused multiply-add), so all backends agree bit
     * for bit (NaN payloads aside). All inputs and out are contiguous and may start anywhere in their storage.
     */
    void dequantizeNf4(Tensor codes, Tensor absmax, Tensor absmaxCodes, Tensor absmax2, float offset, Tensor out);

    /** Waits until all work queued on this device is done. */
    void synchronize();

    MemoryStats memoryStats();

    /** Returns cached, unused memory to the device. */
    void emptyCache();
}
