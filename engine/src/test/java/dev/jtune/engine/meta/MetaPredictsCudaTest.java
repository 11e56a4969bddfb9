package dev.jtune.engine.meta;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.cuda.EmbeddingKernels;
import dev.jtune.engine.cuda.FlashKernels;
import dev.jtune.engine.cuda.NormKernels;
import dev.jtune.engine.cuda.OptimKernels;
import dev.jtune.engine.fused.AttentionKernel;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.engine.ops.Embedding;
import dev.jtune.engine.ops.RmsNorm;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.GradClip;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The meta device predicts the cuda device's allocations: it takes the same op paths (fused attention by the cuda
 * rule) and allocates, as workspace, what the cuda launchers allocate, through their own size functions. Without a
 * GPU the comparison is with what is defined to be equal: the op code's own allocations, which the cpu makes on the
 * same path (the cpu's fused attention reference allocates nothing itself), and the launchers' workspace rules.
 * {@code cuda.MetaMatchesCudaGpuTest} compares meta with the GPU itself.
 */
class MetaPredictsCudaTest {
    private static final MetaBackend META = MetaBackend.instance();
    private static final CpuBackend CPU = CpuBackend.instance();

    @AfterEach
    void restore() {
        System.clearProperty("jtune.cpu.fusedAttention");
        META.multiprocessors(MetaBackend.DEFAULT_MULTIPROCESSORS);
    }

    /** Allocation counts and per-category peaks above the starting point of one measured run. */
    record Footprint(long allocations, long frees, long peak, Map<MemoryCategory, Long> peaks) {
        static Footprint measure(Device device, Runnable run) {
            MemoryStats before;
            if (device.equals(Device.META)) {
                META.reset();
                before = META.memoryStats();
            } else {
                CPU.resetPeaks();
                before = CPU.memoryStats();
            }
            run.run();
            MemoryStats after = device.equals(Device.META) ? META.memoryStats() : CPU.memoryStats();
            Map<MemoryCategory, Long> peaks = new EnumMap<>(MemoryCategory.class);
            for (MemoryCategory c : MemoryCategory.values()) {
                long p = after.peak(c) - before.allocated(c);
                if (p != 0) {
                    peaks.put(c, p);
                }
            }
            assertEquals(before.allocated(), after.allocated(), "the run frees what it allocates on " + device);
            return new Footprint(after.allocations() - before.allocations(), after.frees() - before.frees(),
                    after.peakAllocated() - before.allocated(), peaks);
        }

        long peak(MemoryCategory c) {
            return peaks.getOrDefault(c, 0L);
        }
    }

    /** A forward and backward of causal attention, every tensor in its own scope. */
    private static void attention(Device device, long hq, long hkv, long t, long d, long window) {
        try (Scope s = Scope.open("attention", MemoryCategory.ACTIVATIONS)) {
            Tensor q = Tensor.randn(Shape.of(1, hq, t, d), DType.BF16, device, 1).requiresGrad(true);
            Tensor k = Tensor.randn(Shape.of(1, hkv, t, d), DType.BF16, device, 2).requiresGrad(true);
            Tensor v = Tensor.randn(Shape.of(1, hkv, t, d), DType.BF16, device, 3).requiresGrad(true);
            Tensor g = Tensor.randn(Shape.of(1, hq, t, d), DType.BF16, device, 4);
            Attention.causal(q, k, v, new AttentionSpec(window, 1 / Math.sqrt(d), 16)).backward(g);
        }
    }

    @Test
    void metaTakesTheFusedAttentionPathWhereCudaDoes() {
        AttentionKernel meta = AttentionKernel.OP.on(Device.META);
        for (DType dtype : List.of(DType.F64, DType.F32, DType.BF16, DType.F16)) {
            for (long d : new long[] {8, 16, 32, 48, 64, 96, 128, 192, 256, 512}) {
                boolean documented = (dtype == DType.BF16 || dtype == DType.F16) && Set.of(32L, 64L, 128L, 256L).contains(d);
                assertEquals(documented, AttentionKernel.Cuda.fused(dtype, d), "the cuda rule for " + dtype + " heads of " + d);
                assertEquals(AttentionKernel.Cuda.fused(dtype, d), meta.hasFused(dtype, d), "meta answers as cuda for " + dtype + " heads of " + d);
            }
        }
    }

    /**
     * Where the fused backward needs no workspace (few visible keys), meta's allocations are exactly the op's: the
     * same count and the same peak per category as the cpu routed through the same fused path. Sizes are multiples of
     * the allocator's 512-byte rounding, so the cpu's exact byte counts compare with meta's blocks.
     */
    @Test
    void fusedAttentionAllocatesWhatTheOpAllocatesWhenTheBackwardNeedsNoWorkspace() {
        long[][] cases = {{4, 2, 64, 64, 0}, {4, 1, 128, 32, 16}, {2, 2, 64, 128, 0}}; // Hq, Hkv, T, D, window
        for (long[] c : cases) {
            String what = "Hq " + c[0] + " Hkv " + c[1] + " T " + c[2] + " D " + c[3] + " window " + c[4];
            assertEquals(0, c[0] * c[2] * Float.BYTES % 512, what + ": the statistics [1, Hq, T] fill whole 512-byte blocks");
            Footprint meta = Footprint.measure(Device.META, () -> attention(Device.META, c[0], c[1], c[2], c[3], c[4]));
            System.setProperty("jtune.cpu.fusedAttention", "true");
            Footprint cpu = Footprint.measure(Device.CPU, () -> attention(Device.CPU, c[0], c[1], c[2], c[3], c[4]));
            System.clearProperty("jtune.cpu.fusedAttention");
            Footprint blocked = Footprint.measure(Device.CPU, () -> attention(Device.CPU, c[0], c[1], c[2], c[3], c[4]));
            assertEquals(cpu, meta, what + ": meta's allocations are the fused path's");
            assertEquals(0, meta.peak(MemoryCategory.WORKSPACE), what);
            assertTrue(blocked.allocations() > meta.allocations(), what + ": the blocked path allocates per query block ("
                    + blocked + " vs " + meta + "), so meta did not take it");
        }
    }

    /**
     * With grouped heads over 2,048 or more visible keys the fused backward gives each query head its own dK/dV block,
     * and both the cuda launch and meta allocate the fp32 shares [B, Hq, T, D] for dK and dV as workspace, through
     * {@link FlashKernels#backwardWorkspace}: two more allocations than the op's own, both live at once.
     */
    @Test
    void fusedAttentionBackwardAllocatesTheDkDvSharesOfLongGroupedSpans() {
        long hq = 2;
        long t = 2048;
        long d = 32;
        Footprint split = Footprint.measure(Device.META, () -> attention(Device.META, hq, 1, t, d, 0));
        Footprint ungrouped = Footprint.measure(Device.META, () -> attention(Device.META, hq, hq, t, d, 0));
        Footprint shortWindow = Footprint.measure(Device.META, () -> attention(Device.META, hq, 1, t, d, 2047));
        long shareBytes = hq * t * d * Float.BYTES; // one [1, Hq, T, D] F32 share, a multiple of 512
        assertEquals(2 * shareBytes, split.peak(MemoryCategory.WORKSPACE), "dK and dV shares, both live: " + split);
        assertEquals(0, ungrouped.peak(MemoryCategory.WORKSPACE), "one query head per key/value head: no shares");
        assertEquals(0, shortWindow.peak(MemoryCategory.WORKSPACE), "a window under 2,048 keys: no shares");
        try (Scope s = Scope.open("rule")) {
            Tensor q = Tensor.empty(Shape.of(1, hq, t, d), DType.BF16, Device.META);
            Tensor k = Tensor.empty(Shape.of(1, 1, t, d), DType.BF16, Device.META);
            assertTrue(FlashKernels.splitsKeyValueHeads(q, k, 0) && !FlashKernels.splitsKeyValueHeads(q, k, 2047));
        }
        // the op's own allocations are those of the same shapes without a split (k and v half the size there)
        Footprint grouped1k = Footprint.measure(Device.META, () -> attention(Device.META, hq, 1, 1024, d, 0));
        assertEquals(grouped1k.allocations() + 2, split.allocations(), "the shares are the only extra allocations");
    }

    /** RMSNorm's weight gradient: the partial sums NormKernels sizes, for the modelled GPU's SM count. */
    @Test
    void rmsNormBackwardAllocatesTheLaunchersPartialSums() {
        long n = 300;
        long d = 96;
        for (int sms : new int[] {132, 114, 8}) {
            META.multiprocessors(sms);
            for (boolean weightGrad : new boolean[] {true, false}) {
                Footprint f = Footprint.measure(Device.META, () -> {
                    try (Scope s = Scope.open("rmsNorm", MemoryCategory.ACTIVATIONS)) {
                        Tensor x = Tensor.randn(Shape.of(3, n / 3, d), DType.BF16, Device.META, 1).requiresGrad(true);
                        Tensor w = Tensor.zeros(Shape.of(d), DType.BF16, Device.META).requiresGrad(weightGrad);
                        RmsNorm.apply(x, w, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT).backward(Tensor.randn(Shape.of(3, n / 3, d), DType.BF16, Device.META, 2));
                    }
                });
                long expected = weightGrad ? rounded(NormKernels.weightGradientWorkspaceBytes(n, d, DType.BF16, sms)) : 0;
                assertEquals(expected, f.peak(MemoryCategory.WORKSPACE), sms + " SMs, weight gradient " + weightGrad);
                assertTrue(!weightGrad || expected > 0);
            }
        }
    }

    /** The embedding's backward: the id sort's scratch, counts [V] + offsets [V + 1] + sorted tokens [N] as int32. */
    @Test
    void embeddingBackwardAllocatesTheSortScratch() {
        long vocab = 1000;
        long tokens = 77;
        Footprint f = Footprint.measure(Device.META, () -> {
            try (Scope s = Scope.open("embedding", MemoryCategory.ACTIVATIONS)) {
                Tensor table = Tensor.randn(Shape.of(vocab, 64), DType.BF16, Device.META, 1).requiresGrad(true);
                Tensor ids = Tensor.zeros(Shape.of(tokens), DType.I32, Device.META);
                Embedding.lookup(table, ids).backward(Tensor.randn(Shape.of(tokens, 64), DType.BF16, Device.META, 2));
            }
        });
        assertEquals(4 * (2 * vocab + 1 + tokens), EmbeddingKernels.backwardWorkspaceBytes(tokens, vocab, 64));
        assertEquals(rounded(4 * (2 * vocab + 1 + tokens)), f.peak(MemoryCategory.WORKSPACE));
    }

    /** Gradient clipping: one block-partial buffer per gradient, sized for the modelled GPU. */
    @Test
    void gradientNormAllocatesTheLaunchersPartials() {
        for (int sms : new int[] {132, 2}) {
            META.multiprocessors(sms);
            long[] expected = new long[1];
            Footprint f = Footprint.measure(Device.META, () -> {
                try (Scope s = Scope.open("params", MemoryCategory.WEIGHTS)) {
                    Tensor big = Tensor.zeros(Shape.of(1 << 20), DType.F32, Device.META).requiresGrad(true);
                    Tensor small = Tensor.zeros(Shape.of(100), DType.BF16, Device.META).requiresGrad(true);
                    big.mul(big).sum(0).backward();
                    small.mul(small).sum(0).backward();
                    expected[0] = Math.max(rounded(OptimKernels.sumOfSquaresWorkspaceBytes(big.grad(), sms)),
                            rounded(OptimKernels.sumOfSquaresWorkspaceBytes(small.grad(), sms)));
                    GradClip.clipGradNorm(List.of(big, small), 1.0);
                }
            });
            assertTrue(expected[0] > 0);
            assertEquals(expected[0], f.peak(MemoryCategory.WORKSPACE), sms + " SMs");
        }
    }

    /**
     * The flat AdamW: gradients, master, moments and the parameter table allocated once at construction, and clipping
     * over the flat buffer allocates the launcher's partials for the whole buffer; a step allocates nothing.
     */
    @Test
    void flatOptimizerStateAndClippingAllocateWhatTheLaunchersDo() {
        int sms = 132;
        META.multiprocessors(sms);
        long numel = (1 << 20) + 256; // both parameters, the second aligned to 256 elements
        long[] workspace = new long[1];
        Footprint f = Footprint.measure(Device.META, () -> {
            try (Scope s = Scope.open("params", MemoryCategory.WEIGHTS)) {
                Tensor big = Tensor.zeros(Shape.of(1 << 20), DType.BF16, Device.META).requiresGrad(true);
                Tensor small = Tensor.zeros(Shape.of(100), DType.BF16, Device.META).requiresGrad(true);
                AdamW opt = new AdamW(List.of(big, small), AdamW.Config.defaults()); // (no backward: its own gradients would count)
                workspace[0] = rounded(OptimKernels.sumOfSquaresWorkspaceBytes(opt.gradientBuffers().getFirst().flat(), sms));
                GradClip.clipFlatGradNorm(opt.gradientBuffers(), 1.0);
                opt.step();
                opt.zeroGrad();
            }
        });
        assertEquals(rounded(2 * numel), f.peak(MemoryCategory.GRADIENTS), "one bf16 gradient buffer");
        assertEquals(2 * rounded(4 * numel) + rounded(2 * 3 * 8), f.peak(MemoryCategory.OPTIMIZER), "m, v and the table");
        assertEquals(rounded(4 * numel), f.peak(MemoryCategory.MASTER_WEIGHTS), "the fp32 master, on its own line");
        assertTrue(workspace[0] > 0);
        assertEquals(workspace[0], f.peak(MemoryCategory.WORKSPACE));
    }

    /** The caching allocator's rounding (512 bytes). */
    private static long rounded(long bytes) {
        return Math.ceilDiv(bytes, 512) * 512;
    }
}
