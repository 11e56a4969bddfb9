package dev.jtune.engine.cpu;

import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.DeviceMismatchException;
import dev.jtune.engine.HostElements;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.OutOfDeviceMemoryException;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Storage;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.BinaryOp;
import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.backend.Distribution;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.backend.HostMappedCounter;
import dev.jtune.engine.ReduceOp;
import dev.jtune.engine.memory.MemoryStats;

import java.lang.foreign.MemorySegment;
import java.util.EnumMap;
import java.util.Map;
import java.util.stream.LongStream;

/**
 * The plain-Java reference backend: every op computed element by element in double through {@link HostElements}
 * and rounded once to the output's dtype. Correctness first; it is what CI runs and what GPU kernels are checked
 * against. Synchronous, so {@link #synchronize()} has nothing to wait for. The fused ops' references live with
 * their ops ({@code dev.jtune.engine.fused}), sharing {@link CpuLoops}; {@link #kernels} hands them out.
 */
public final class CpuBackend implements Backend {
    private static final CpuBackend INSTANCE = new CpuBackend();

    private final AllocationStats stats = new AllocationStats();
    private final HostMappedCounter hostMapped = new HostMappedCounter();

    private CpuBackend() {
    }

    public static CpuBackend instance() {
        return INSTANCE;
    }

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public String description() {
        return "cpu (plain Java reference, " + Runtime.getRuntime().availableProcessors() + " threads)";
    }

    // ---------------------------------------------------------------- memory

    @Override
    public Storage allocate(long bytes, MemoryCategory category) {
        CpuStorage storage = new CpuStorage(this, nativeBlock(bytes, category), category, Placement.DEVICE);
        stats.allocated(bytes, category);
        return storage;
    }

    /** Plain host memory like {@link #allocate}, counted in the host figure as a GPU's host-mapped memory is. */
    @Override
    public Storage allocateHostMapped(long bytes, MemoryCategory category) {
        CpuStorage storage = new CpuStorage(this, nativeBlock(bytes, category), category, Placement.HOST_MAPPED);
        hostMapped.allocated(bytes, category);
        return storage;
    }

    private MemorySegment nativeBlock(long bytes, MemoryCategory category) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("allocate: " + bytes + " bytes (must be > 0)");
        }
        MemorySegment segment = NativeHeap.allocate(bytes, CpuStorage.ALIGNMENT);
        if (segment == null) {
            throw new OutOfDeviceMemoryException("cpu: cannot allocate " + MemoryStats.gib(bytes) + " of host memory for "
                    + category + "; this process holds " + MemoryStats.gib(stats.snapshot().allocated() + hostMapped.snapshot().allocated()), bytes, -1);
        }
        return segment;
    }

    void released(CpuStorage storage) {
        if (storage.placement() == Placement.HOST_MAPPED) {
            hostMapped.freed(storage.bytes(), storage.category());
        } else {
            stats.freed(storage.bytes(), storage.category());
        }
    }

    @Override
    public MemoryStats memoryStats() {
        return stats.snapshot().withHost(hostMapped.snapshot());
    }

    /** Starts the peak figures of {@link #memoryStats()} again from what is allocated now. */
    @Override
    public void resetPeaks() {
        stats.resetPeaks();
        hostMapped.resetPeak();
    }

    @Override
    public void emptyCache() {
        // nothing cached: every storage is freed as it closes
    }

    @Override
    public void synchronize() {
        // every op has finished when it returns
    }

    // ---------------------------------------------------------------- transfers and copies

    @Override
    public void copyFromHost(MemorySegment src, Tensor dst) {
        MemorySegment.copy(src, 0, segmentOf(dst), byteOffset(dst), dst.dtype().bytesFor(dst.numel()));
    }

    @Override
    public void copyToHost(Tensor src, MemorySegment dst) {
        MemorySegment.copy(segmentOf(src), byteOffset(src), dst, 0, src.dtype().bytesFor(src.numel()));
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        if (src.dtype() == dst.dtype() && src.isContiguous() && dst.isContiguous()) {
            // same layout on both sides (also the only way NF4 codes are copied): move the bytes
            MemorySegment.copy(segmentOf(src), byteOffset(src), segmentOf(dst), byteOffset(dst), src.dtype().bytesFor(src.numel()));
            return;
        }
        if (src.dtype() == DType.NF4 || dst.dtype() == DType.NF4) {
            throw new UnsupportedOpException("copy: NF4 codes can only be copied contiguously, got " + src.describe() + " to " + dst.describe());
        }
        MemorySegment from = segmentOf(src);
        MemorySegment to = segmentOf(dst);
        DType in = src.dtype();
        DType outType = dst.dtype();
        if (in.isFloating()) {
            StridedWalk.forEach(src.shape(), i -> HostElements.set(to, outType, i[1], HostElements.get(from, in, i[0])), src, dst);
        } else {
            // through long: I64 values beyond 2^53 stay exact, and a floating destination rounds them once
            StridedWalk.forEach(src.shape(), i -> HostElements.setLong(to, outType, i[1], HostElements.getLong(from, in, i[0])), src, dst);
        }
    }

    @Override
    public void fill(Tensor dst, double value) {
        MemorySegment seg = segmentOf(dst);
        long first = byteOffset(dst);
        long bytes = dst.dtype().bytesFor(dst.numel());
        HostElements.set(seg, dst.dtype(), dst.offset(), value);
        // replicate the first element by doubling copies: a fill of n elements costs log2(n) bulk copies
        long done = dst.dtype().bytesFor(1);
        while (done < bytes) {
            long chunk = Math.min(done, bytes - done);
            MemorySegment.copy(seg, first, seg, first + done, chunk);
            done += chunk;
        }
    }

    @Override
    public void fillRandom(Tensor dst, Distribution distribution, long seed, double p0, double p1) {
        MemorySegment seg = segmentOf(dst);
        DType dtype = dst.dtype();
        long base = dst.offset();
        LongStream.range(0, dst.numel()).parallel().forEach(i -> {
            double v = switch (distribution) {
                case NORMAL -> CounterRng.normal(seed, i, p0, p1);
                case UNIFORM -> CounterRng.uniform(seed, i, p0, p1);
            };
            HostElements.set(seg, dtype, base + i, v);
        });
    }

    // ---------------------------------------------------------------- arithmetic

    @Override
    public void accumulate(Tensor src, Tensor dst) {
        MemorySegment from = segmentOf(src);
        MemorySegment to = segmentOf(dst);
        DType in = src.dtype();
        DType out = dst.dtype();
        // src rounded to dst's dtype first (exact when it is the wider one), then added as binary adds
        StridedWalk.forEach(dst.shape(), i -> HostElements.set(to, out, i[1],
                BinaryOp.ADD.apply(HostElements.get(to, out, i[1]), Numerics.roundTo(out, HostElements.get(from, in, i[0])))), src, dst);
    }

    @Override
    public void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
        MemorySegment sa = segmentOf(a);
        MemorySegment sb = segmentOf(b);
        MemorySegment so = segmentOf(out);
        DType dtype = out.dtype();
        StridedWalk.forEach(out.shape(),
                i -> HostElements.set(so, dtype, i[2], op.apply(HostElements.get(sa, dtype, i[0]), HostElements.get(sb, dtype, i[1]))),
                a, b, out);
    }

    @Override
    public void scale(Tensor a, double factor, Tensor out) {
        MemorySegment sa = segmentOf(a);
        MemorySegment so = segmentOf(out);
        DType dtype = out.dtype();
        StridedWalk.forEach(out.shape(), i -> HostElements.set(so, dtype, i[1], HostElements.get(sa, dtype, i[0]) * factor), a, out);
    }

    @Override
    public void reduce(ReduceOp op, Tensor a, int axis, Tensor out) {
        // contiguous a seen as [outer, n, inner]; out as [outer, inner]
        long n = a.dim(axis);
        long inner = 1;
        for (int d = axis + 1; d < a.rank(); d++) {
            inner *= a.dim(d);
        }
        long outer = a.numel() / (n * inner);
        MemorySegment src = segmentOf(a);
        MemorySegment dst = segmentOf(out);
        DType dtype = a.dtype();
        for (long o = 0; o < outer; o++) {
            for (long in = 0; in < inner; in++) {
                long first = a.offset() + o * n * inner + in;
                double acc = HostElements.get(src, dtype, first);
                for (long r = 1; r < n; r++) {
                    double v = HostElements.get(src, dtype, first + r * inner);
                    acc = op == ReduceOp.MAX ? Math.max(acc, v) : acc + v; // Math.max returns NaN if either is NaN
                }
                HostElements.set(dst, out.dtype(), out.offset() + o * inner + in, op == ReduceOp.MEAN ? acc / n : acc);
            }
        }
    }

    @Override
    public void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, double alpha, boolean accumulate) {
        CpuMatmul.run(a, transA, b, transB, out, alpha, accumulate);
    }

    @Override
    public <K> K kernels(FusedOp<K> op) {
        return op.cpu();
    }

    // ---------------------------------------------------------------- helpers

    /** The native memory behind a cpu tensor (for the cpu references of fused ops). */
    public static MemorySegment segmentOf(Tensor t) {
        if (!(TensorInternals.storage(t) instanceof CpuStorage s)) {
            throw new DeviceMismatchException("cpu backend given " + t.describe());
        }
        return s.segment();
    }

    /** Byte offset of a tensor's first element; NF4 views must start on a whole byte. */
    private static long byteOffset(Tensor t) {
        if (t.dtype() == DType.NF4 && t.offset() % 2 != 0) {
            throw new UnsupportedOpException("cpu: " + t.describe() + " starts in the middle of a byte (element offset "
                    + t.offset() + ")");
        }
        return t.dtype().bytesFor(t.offset());
    }

    /** Bytes allocated now and at peak, overall and per category; reserved equals allocated (nothing is cached). */
    private static final class AllocationStats {
        private long allocated;
        private long peak;
        private long allocations;
        private long frees;
        private final Map<MemoryCategory, Long> byCategory = new EnumMap<>(MemoryCategory.class);
        private final Map<MemoryCategory, Long> peakByCategory = new EnumMap<>(MemoryCategory.class);
        private final Map<MemoryCategory, Long> atPeak = new EnumMap<>(MemoryCategory.class);

        synchronized void allocated(long bytes, MemoryCategory category) {
            allocated += bytes;
            allocations++;
            long now = byCategory.merge(category, bytes, Long::sum);
            peakByCategory.merge(category, now, Math::max);
            if (allocated > peak) {
                peak = allocated;
                atPeak.clear();
                atPeak.putAll(byCategory);
            }
        }

        synchronized void freed(long bytes, MemoryCategory category) {
            allocated -= bytes;
            frees++;
            byCategory.merge(category, -bytes, Long::sum);
        }

        synchronized void resetPeaks() {
            peak = allocated;
            peakByCategory.clear();
            peakByCategory.putAll(byCategory);
            atPeak.clear();
            atPeak.putAll(byCategory);
        }

        synchronized MemoryStats snapshot() {
            return new MemoryStats(allocated, allocated, peak, peak, allocations, frees, allocations, frees,
                    byCategory, peakByCategory, atPeak);
        }
    }
}
