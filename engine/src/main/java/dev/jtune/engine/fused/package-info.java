/**
 * The fused ops' kernels, one file per op: its kernel interface (the contract), the cpu reference, the cuda launcher
 * (a thin class over the {@code cuda.*Kernels} launch class of its .cu file), the meta rule, and one registration,
 * {@code FusedOp<K> OP = FusedOp.of(name, new Cpu(), Cuda::new, new Meta())}. The op itself (checks, output
 * allocation, autograd) calls {@code XKernel.on(tensor)}, which asks the tensor's backend through the generic
 * {@link dev.jtune.engine.backend.Backend#kernels} hook; no backend names any op.
 *
 * <p>Contract shared by every kernel here, unless its method says otherwise: every tensor is contiguous (it may
 * start anywhere in its storage), float math is fp32 (fp64 for F64 tensors), an output is written entirely (no read
 * of its old contents), and an output may be the very tensor of an input of the same shape and dtype (in place)
 * only where the method says so. Statistics and accumulators (rstd, lse, loss rows, scores, gradient sums, optimizer
 * state) are F32, or F64 next to F64 inputs so that float64 gradient checks see no fp32 rounding; the cpu reference
 * honours that, cuda may refuse it. The op has checked shapes and dtypes before a kernel runs.
 *
 * <p>The meta rule computes nothing; it allocates, as WORKSPACE, exactly the scratch its cuda launcher allocates,
 * through the launcher's own size function ({@code NormKernels.weightGradientWorkspaceBytes},
 * {@code FlashKernels.backwardWorkspace}, ...), and answers path choices as cuda does ({@link AttentionKernel#hasFused}),
 * so the meta device's allocations are the GPU's.
 */
package dev.jtune.engine.fused;
