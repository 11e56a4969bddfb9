package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.fused.AttentionKernel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static dev.jtune.engine.cuda.CudaParityTest.assertClose;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kernels/flash.cu against the cpu reference (double precision from the same rounded inputs): every head size the
 * kernels take, bf16 and f16, causal and windowed, grouped-query heads, lengths that are not multiples of the
 * 64-row tiles, batches. Outputs start poisoned (NaN), so an element a kernel does not write fails. The backward
 * kernels get the reference's lse and delta, so each kernel is compared on its own.
 */
@Tag("gpu")
class CudaFlashAttentionTest {
    private static final Device GPU = Device.cuda(0);

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    @AfterAll
    static void unpoison() {
        CudaBackend.get(0).poisonAllocations(false);
    }

    /** bf16 and f16 operands of the products (P and dS are rounded to them too), fp32 accumulation. */
    private static double tol(DType dtype) {
        return dtype == DType.BF16 ? 2e-2 : 4e-3;
    }

    @Test
    void kernelsMatchTheCpuReference() {
        long[][] cases = { // B, Hq, Hkv, T, D, window
                {1, 4, 1, 100, 256, 0},
                {2, 4, 2, 200, 256, 37},
                {1, 4, 1, 333, 128, 64},
                {1, 2, 2, 3, 64, 0}, // (the first query sees only itself: its dq is exactly 0)
                {2, 8, 1, 130, 64, 0},
                {1, 4, 4, 257, 32, 100},
                {1, 3, 1, 65, 32, 2}, // (a window of 1 would make dq and dk exactly 0)
                {1, 4, 1, 2100, 256, 0}, // spans of 2048 and more: one dK/dV block per query head, shares summed
                {2, 4, 2, 2049, 64, 2048}};
        Backend gpu = CudaBackend.get(0);
        Backend cpu = CpuBackend.instance();
        long seed = 31;
        for (DType dtype : new DType[] {DType.BF16, DType.F16}) {
            for (long[] c : cases) {
                String what = dtype + " B" + c[0] + " Hq" + c[1] + " Hkv" + c[2] + " T" + c[3] + " D" + c[4] + " window " + c[5];
                assertTrue(gpu.kernels(AttentionKernel.OP).hasFused(dtype, c[4]), what);
                try (Scope s = Scope.open(what)) {
                    Shape qs = Shape.of(c[0], c[1], c[3], c[4]);
                    Shape kvs = Shape.of(c[0], c[2], c[3], c[4]);
                    Shape rows = Shape.of(c[0], c[1], c[3]);
                    double scale = 1 / Math.sqrt(c[4]) * 1.5; // peakier than uniform
                    Tensor q = Tensor.randn(qs, DType.F32, Device.CPU, seed++).cast(dtype);
                    Tensor k = Tensor.randn(kvs, DType.F32, Device.CPU, seed++).cast(dtype);
                    Tensor v = Tensor.randn(kvs, DType.F32, Device.CPU, seed++).cast(dtype);
                    Tensor g = Tensor.randn(qs, DType.F32, Device.CPU, seed++).cast(dtype);

                    Tensor out = Tensor.empty(qs, dtype, Device.CPU);
                    Tensor lse = Tensor.empty(rows, DType.F32, Device.CPU);
                    cpu.kernels(AttentionKernel.OP).fusedForward(q, k, v, c[5], scale, out, lse);
                    Tensor delta = Tensor.empty(rows, DType.F32, Device.CPU);
                    cpu.kernels(AttentionKernel.OP).rowDot(g.reshape(-1, c[4]), out.reshape(-1, c[4]), delta.reshape(-1));
                    Tensor gq = Tensor.empty(qs, dtype, Device.CPU);
                    Tensor gk = Tensor.empty(kvs, dtype, Device.CPU);
                    Tensor gv = Tensor.empty(kvs, dtype, Device.CPU);
                    cpu.kernels(AttentionKernel.OP).fusedBackward(q, k, v, g, lse, delta, c[5], scale, gq, gk, gv);

                    Tensor[] dev = {q.to(GPU), k.to(GPU), v.to(GPU), g.to(GPU), lse.to(GPU), delta.to(GPU)};
                    Tensor outG = Tensor.empty(qs, dtype, GPU);
                    Tensor lseG = Tensor.empty(rows, DType.F32, GPU);
                    gpu.kernels(AttentionKernel.OP).fusedForward(dev[0], dev[1], dev[2], c[5], scale, outG, lseG);
                    assertClose(out, outG.to(Device.CPU), tol(dtype), what + ": out");
                    assertClose(lse, lseG.to(Device.CPU), 1e-5, what + ": lse");
                    Tensor gqG = Tensor.empty(qs, dtype, GPU);
                    Tensor gkG = Tensor.empty(kvs, dtype, GPU);
                    Tensor gvG = Tensor.empty(kvs, dtype, GPU);
                    gpu.kernels(AttentionKernel.OP).fusedBackward(dev[0], dev[1], dev[2], dev[3], dev[4], dev[5], c[5], scale, gqG, gkG, gvG);
                    assertClose(gq, gqG.to(Device.CPU), tol(dtype), what + ": dq");
                    assertClose(gk, gkG.to(Device.CPU), tol(dtype), what + ": dk");
                    assertClose(gv, gvG.to(Device.CPU), tol(dtype), what + ": dv");
                }
            }
        }
    }

    /** Inputs at an offset that is not 16-byte aligned (views into a flat buffer) give the aligned inputs' results. */
    @Test
    void misalignedViewsAreCopiedBeforeTheKernels() {
        try (Scope s = Scope.open("misaligned")) {
            long n = 1L * 4 * 70 * 64;
            Tensor flat = Tensor.randn(dev.jtune.engine.Shape.of(n + 1), DType.F32, GPU, 5).cast(DType.BF16);
            Tensor q = flat.slice(0, 1, n + 1).reshape(1, 4, 70, 64);
            assertTrue(q.isContiguous() && q.address() % 16 != 0, "the view is contiguous and misaligned");
            Tensor k = Tensor.randn(Shape.of(1, 1, 70, 64), DType.F32, GPU, 6).cast(DType.BF16);
            Tensor v = Tensor.randn(Shape.of(1, 1, 70, 64), DType.F32, GPU, 7).cast(DType.BF16);
            dev.jtune.engine.ops.AttentionSpec spec = new dev.jtune.engine.ops.AttentionSpec(0, 0.125, 64);
            Tensor got = dev.jtune.engine.ops.Attention.causal(q, k, v, spec);
            Tensor want = dev.jtune.engine.ops.Attention.causal(q.copy(), k, v, spec);
            assertClose(want.to(Device.CPU), got.to(Device.CPU), 0, "misaligned q");
        }
    }

    @Test
    void otherDtypesAndHeadSizesAreLeftToTheBlockedPath() {
        Backend gpu = CudaBackend.get(0);
        assertFalse(gpu.kernels(AttentionKernel.OP).hasFused(DType.F32, 256), "F32 attention stays exact (blocked path)");
        assertFalse(gpu.kernels(AttentionKernel.OP).hasFused(DType.BF16, 80), "head size without a kernel");
    }
}
