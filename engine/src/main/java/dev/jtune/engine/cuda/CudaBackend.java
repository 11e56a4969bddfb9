package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.cuda.CudaException;
import dev.jtune.cuda.CudaLibrary;
import dev.jtune.cuda.CudaLibraryNotFoundException;
import dev.jtune.cuda.NativeLibraries;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.DeviceUnavailableException;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Storage;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.BinaryOp;
import dev.jtune.engine.backend.Distribution;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.backend.HostMappedCounter;
import dev.jtune.engine.ReduceOp;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.memory.CachingAllocator;
import dev.jtune.engine.memory.MemoryStats;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.function.Supplier;

import static dev.jtune.cuda.CudaException.check;

/**
 * The product backend: one NVIDIA GPU, one compute stream, the caching allocator (expandable segments through
 * CUDA virtual memory unless {@code -Djtune.cuda.expandableSegments=false}), NVRTC-compiled kernels, cuBLASLt
 * matmuls and a pinned host pool for transfers. All work is queued on the compute stream in order, so a freed
 * block can be handed out again at once; only {@link #copyToHost} and {@link #synchronize} wait for the GPU. Fused
 * ops get their launchers through {@link #kernels}; the launch classes ({@code *Kernels}, one compiled module each)
 * are built on first use by {@link #family} and shared.
 */
public final class CudaBackend implements Backend {
    /** Host-device transfers move through pinned buffers of this size, two in flight. */
    private static final long CHUNK = 16L << 20;

    /** cuBLASLt's workspace, allocated once per GPU at the first matmul (the meta backend does not model it; a plan adds it). */
    public static final long MATMUL_WORKSPACE_BYTES = LtMatmul.WORKSPACE_BYTES;

    private static final Object LOCK = new Object();
    private static volatile int deviceCount = -1;
    private static volatile String unavailableReason;
    private static CudaBackend[] instances = new CudaBackend[0];

    private final Device device;
    private final CudaContext context;
    private final CudaStream stream;
    private final CudaDeviceMemory deviceMemory;
    private final CachingAllocator allocator;
    private final KernelCompiler compiler;
    private final PinnedHostPool pinned;
    private final HostMappedCounter hostMapped = new HostMappedCounter();
    private final CudaEvent[] transferEvents;
    private final Map<FusedOp<?>, Object> launchers = new ConcurrentHashMap<>();
    private final Map<Class<?>, Lazy<?>> families = new ConcurrentHashMap<>();
    private volatile boolean poison;

    private CudaBackend(int index) {
        this.device = Device.cuda(index);
        this.context = new CudaContext(index);
        this.stream = new CudaStream();
        this.transferEvents = new CudaEvent[] {new CudaEvent(false), new CudaEvent(false)};
        this.deviceMemory = new CudaDeviceMemory(context);
        boolean expandable = Boolean.parseBoolean(System.getProperty("jtune.cuda.expandableSegments", "true"))
                && context.supportsVirtualMemory();
        long limit = Long.getLong("jtune.cuda.memoryLimit", 0L);
        this.allocator = new CachingAllocator(deviceMemory, CachingAllocator.Config.fromSettings(
                expandable ? CachingAllocator.Segments.EXPANDABLE : CachingAllocator.Segments.PLAIN, limit));
        this.compiler = new KernelCompiler(context);
        this.pinned = new PinnedHostPool(context);
    }

    /** The backend of GPU {@code index}, started on first use. */
    public static CudaBackend get(int index) {
        int count = deviceCount();
        if (index >= count) {
            throw new DeviceUnavailableException("cuda:" + index + " is not available: "
                    + (count == 0 ? unavailableReason : count + " CUDA device(s) found"));
        }
        synchronized (LOCK) {
            if (instances.length < count) {
                instances = java.util.Arrays.copyOf(instances, count);
            }
            if (instances[index] == null) {
                instances[index] = new CudaBackend(index);
            }
            return instances[index];
        }
    }

    /** Number of usable CUDA devices; 0 when there is no driver or no GPU (see {@link #unavailableReason()}). */
    public static int deviceCount() {
        if (deviceCount < 0) {
            synchronized (LOCK) {
                if (deviceCount < 0) {
                    deviceCount = probe();
                }
            }
        }
        return deviceCount;
    }

    /** Why no GPU can be used, or null when one can. */
    public static String unavailableReason() {
        deviceCount();
        return unavailableReason;
    }

    private static int probe() {
        if (!NativeLibraries.isAvailable(CudaLibrary.DRIVER)) {
            try {
                NativeLibraries.lookup(CudaLibrary.DRIVER);
            } catch (CudaLibraryNotFoundException e) {
                unavailableReason = "the NVIDIA driver library was not found (" + e.getMessage() + ")";
            }
            return 0;
        }
        try {
            int n = CudaContext.deviceCount();
            if (n == 0) {
                unavailableReason = "the NVIDIA driver reports no CUDA device";
            }
            return n;
        } catch (CudaException e) {
            unavailableReason = "the CUDA driver could not start: " + e.getMessage();
            return 0;
        }
    }

    // ---------------------------------------------------------------- identity and memory

    @Override
    public Device device() {
        return device;
    }

    @Override
    public String description() {
        return String.format(java.util.Locale.ROOT, "%s %s (%s, %d SMs, %.1f GiB)", device, context.name(), context.arch(),
                context.multiprocessors(), context.totalMemory() / (double) (1L << 30));
    }

    public CudaContext context() {
        return context;
    }

    public CudaStream stream() {
        return stream;
    }

    /**
     * A new non-blocking stream of this GPU, for work that overlaps the compute stream (the host-offloaded optimizer's
     * copies); ordering with the compute stream is the caller's, through events. The caller closes it.
     */
    public CudaStream newStream() {
        context.makeCurrent();
        return new CudaStream();
    }

    public KernelCompiler compiler() {
        return compiler;
    }

    public PinnedHostPool pinnedPool() {
        return pinned;
    }

    CudaDeviceMemory deviceMemory() {
        return deviceMemory;
    }

    public CachingAllocator allocator() {
        return allocator;
    }

    @Override
    public Storage allocate(long bytes, MemoryCategory category) {
        context.makeCurrent();
        Block block = allocator.allocate(bytes, category);
        if (poison) {
            check(CudaDriver.cuMemsetD8Async(block.address(), 0xFF, block.size(), stream.handle()), "cuMemsetD8Async");
        }
        return new CudaStorage(device, allocator, block);
    }

    /** Page-locked host memory mapped into this GPU's address space: see {@link HostMappedStorage}. */
    @Override
    public Storage allocateHostMapped(long bytes, MemoryCategory category) {
        HostMappedStorage storage = HostMappedStorage.allocate(device, context, hostMapped, bytes, category);
        if (poison) {
            storage.hostSegment().fill((byte) 0xFF);
        }
        return storage;
    }

    /**
     * Tests: fill every new allocation with 0xFF bytes (NaN in every float format), so that an output element a
     * kernel forgot to write shows up as NaN instead of passing on stale data.
     */
    public void poisonAllocations(boolean on) {
        this.poison = on;
    }

    @Override
    public MemoryStats memoryStats() {
        return allocator.stats().withHost(hostMapped.snapshot());
    }

    /** Restarts the peaks (the allocator's and the host-mapped figure) from the current values. */
    @Override
    public void resetPeaks() {
        allocator.resetPeaks();
        hostMapped.resetPeak();
    }

    @Override
    public void emptyCache() {
        context.makeCurrent();
        synchronize();
        allocator.emptyCache();
        pinned.emptyCache();
    }

    @Override
    public void synchronize() {
        context.makeCurrent();
        stream.synchronize();
    }

    // ---------------------------------------------------------------- transfers

    @Override
    public void copyFromHost(MemorySegment src, Tensor dst) {
        context.makeCurrent();
        long bytes = dst.dtype().bytesFor(dst.numel());
        long base = dst.address();
        try (PinnedHostPool.Buffer b0 = pinned.acquire(Math.min(bytes, CHUNK)); PinnedHostPool.Buffer b1 = pinned.acquire(Math.min(bytes, CHUNK))) {
            PinnedHostPool.Buffer[] buffers = {b0, b1};
            int chunk = 0;
            for (long off = 0; off < bytes; off += CHUNK, chunk++) {
                int i = chunk & 1;
                long len = Math.min(CHUNK, bytes - off);
                if (chunk >= 2) {
                    transferEvents[i].synchronize(); // this buffer's previous copy must be done before refilling it
                }
                MemorySegment.copy(src, off, buffers[i].segment(), 0, len);
                check(CudaDriver.cuMemcpyHtoDAsync_v2(base + off, buffers[i].segment(), len, stream.handle()), "cuMemcpyHtoDAsync_v2");
                transferEvents[i].record(stream);
            }
            transferEvents[0].synchronize();
            transferEvents[1].synchronize();
        }
    }

    @Override
    public void copyToHost(Tensor src, MemorySegment dst) {
        context.makeCurrent();
        long bytes = src.dtype().bytesFor(src.numel());
        long base = src.address();
        try (PinnedHostPool.Buffer b = pinned.acquire(Math.min(bytes, CHUNK))) {
            for (long off = 0; off < bytes; off += CHUNK) {
                long len = Math.min(CHUNK, bytes - off);
                check(CudaDriver.cuMemcpyDtoHAsync_v2(b.segment(), base + off, len, stream.handle()), "cuMemcpyDtoHAsync_v2");
                stream.synchronize();
                MemorySegment.copy(b.segment(), 0, dst, off, len);
            }
        }
    }

    // ---------------------------------------------------------------- compute

    @Override
    public void copy(Tensor src, Tensor dst) {
        context.makeCurrent();
        if (src.dtype() == dst.dtype() && src.isContiguous() && dst.isContiguous() || src.dtype() == DType.NF4) {
            long bytes = src.dtype().bytesFor(src.numel());
            check(CudaDriver.cuMemcpyDtoDAsync_v2(dst.address(), src.address(), bytes, stream.handle()), "cuMemcpyDtoDAsync_v2");
            return;
        }
        elementwise().copy(src, dst);
    }

    @Override
    public void fill(Tensor dst, double value) {
        context.makeCurrent();
        elementwise().fill(dst, value);
    }

    @Override
    public void fillRandom(Tensor dst, Distribution distribution, long seed, double p0, double p1) {
        context.makeCurrent();
        elementwise().random(dst, distribution, seed, p0, p1);
    }

    @Override
    public void accumulate(Tensor src, Tensor dst) {
        context.makeCurrent();
        elementwise().accumulate(src, dst);
    }

    @Override
    public void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
        context.makeCurrent();
        elementwise().binary(op, a, b, out);
    }

    @Override
    public void scale(Tensor a, double factor, Tensor out) {
        context.makeCurrent();
        elementwise().scale(a, factor, out);
    }

    @Override
    public void reduce(ReduceOp op, Tensor a, int axis, Tensor out) {
        context.makeCurrent();
        family(ReduceKernels.class, be -> new ReduceKernels(compiler, stream, context)).reduce(op, a, axis, out);
    }

    @Override
    public void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, double alpha, boolean accumulate) {
        context.makeCurrent();
        // cuBLASLt's workspace lives as long as the backend
        family(LtMatmul.class, be -> new LtMatmul(stream, allocator.allocate(LtMatmul.WORKSPACE_BYTES, MemoryCategory.WORKSPACE).address()))
                .matmul(a, transA, b, transB, out, alpha, accumulate);
    }

    /**
     * kernels/elementwise.cu: the primitives' copies, fills, arithmetic and random numbers, which the element-wise
     * fused ops (softcap, dropout) launch from too. Call with the context current.
     */
    public ElementwiseKernels elementwise() {
        return family(ElementwiseKernels.class, be -> new ElementwiseKernels(compiler, stream, context));
    }

    /** The op's cuda launcher for this GPU, built on first use and kept; the context is made current for the launch. */
    @Override
    @SuppressWarnings("unchecked")
    public <K> K kernels(FusedOp<K> op) {
        context.makeCurrent();
        return (K) launchers.computeIfAbsent(op, o -> o.newCuda(this));
    }

    /**
     * The kernel family {@code type} of this GPU (a {@code *Kernels} launch class over one compiled module), built by
     * {@code factory} on first use and shared by every op that launches from it. Call with the context current.
     */
    public <T> T family(Class<T> type, Function<CudaBackend, T> factory) {
        Lazy<?> lazy = families.computeIfAbsent(type, t -> new Lazy<>(() -> factory.apply(this)));
        return type.cast(lazy.get());
    }

    // ---------------------------------------------------------------- lazily built kernel families

    /** A kernel family (its module compiled or loaded), or the cuBLASLt planner, built on first use. */
    private static final class Lazy<T> {
        private final Supplier<T> factory;
        private volatile T value;

        Lazy(Supplier<T> factory) {
            this.factory = factory;
        }

        T get() {
            T v = value;
            if (v == null) {
                synchronized (this) {
                    if (value == null) {
                        value = factory.get();
                    }
                    v = value;
                }
            }
            return v;
        }
    }
}
