package dev.jtune.engine.cuda;

import dev.jtune.cuda.Cublas;
import dev.jtune.cuda.CublasLt;
import dev.jtune.engine.DType;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

import static dev.jtune.cuda.CudaException.checkCublasLt;

/**
 * Matrix products through cuBLASLt: bf16/f16/f32 inputs with fp32 accumulation (f64 with f64). The engine's
 * tensors are row-major and cuBLASLt is column-major, so {@code out = a @ b} is issued as
 * {@code out^T = b^T @ a^T}: the row-major buffers already are those transposes. Descriptors and the
 * heuristic's algorithm are planned once per (shape, dtypes, transposes, alignment) and reused.
 */
final class LtMatmul implements AutoCloseable {
    /** cuBLASLt's recommended workspace on Hopper. */
    static final long WORKSPACE_BYTES = 32L << 20;

    /**
     * What a plan depends on: the product's shape (batch, m, n, k), transposes, whether b is one 2-D matrix shared by
     * the batch, the dtypes, and each pointer's alignment (the heuristic may pick a kernel that assumes it).
     */
    record Key(long batch, long m, long n, long k, boolean transA, boolean transB, boolean sharedB,
               DType in, DType out, int alignA, int alignB, int alignOut, long ldA, long ldB, long ldOut) {

        /** The key of {@code out = op(a) @ op(b)} (see {@link #matmul}). */
        static Key of(Operand a, boolean transA, Operand b, boolean transB, Operand out) {
            long m = out.shape().dim(out.shape().rank() - 2);
            long n = out.shape().dim(out.shape().rank() - 1);
            long k = transA ? a.shape().dim(a.shape().rank() - 2) : a.shape().dim(a.shape().rank() - 1);
            long batch = out.shape().numel() / (m * n);
            boolean sharedB = b.shape().rank() == 2 && batch > 1;
            return new Key(batch, m, n, k, transA, transB, sharedB, a.dtype(), out.dtype(),
                    alignment(a.address()), alignment(b.address()), alignment(out.address()), a.rowStride(), b.rowStride(), out.rowStride());
        }
    }

    /**
     * A matmul operand as the plan sees it: shape, dtype, device address, and the elements between its stored rows
     * (the last dimension when contiguous; a 2-D column slice's row stride, cuBLASLt's leading dimension).
     */
    record Operand(Shape shape, DType dtype, long address, long rowStride) {
        static Operand of(Tensor t) {
            return new Operand(t.shape(), t.dtype(), t.address(), t.rank() == 2 ? t.stride(0) : t.dim(-1));
        }
    }

    /**
     * Everything cublasLtMatmul needs besides the pointers; kept for the process lifetime. {@code algo} is the
     * heuristic's first choice, overwritten by the fastest of {@code candidates} once tuned ({@link #AUTOTUNE}).
     */
    private record Plan(MemorySegment desc, MemorySegment layoutA, MemorySegment layoutB, MemorySegment layoutC,
                        MemorySegment algo, MemorySegment candidates, int count, AtomicBoolean tuned, MemorySegment one,
                        MemorySegment zero) {
    }

    /**
     * {@code -Djtune.cuda.matmulAutotune=true} (experiment, off): the first product of each plan that overwrites its
     * output times the heuristic's first {@link #CANDIDATES} algorithms on its own operands (one warm-up and
     * {@link #REPEATS} timed runs each, CUDA events) and keeps the fastest; {@code verbose} also prints each choice.
     * The choice is made once per process (a plan's key), so a run's products stay the same bits step to step.
     * Measured (H100, 270M QLoRA r16 at 8K, twenty-third session): alone, 47 of the step's product shapes had a
     * faster candidate (the LM head's [512, 640] x [640, 262144] 0.2745 -> 0.2502 ms, its dX 0.2617 -> 0.2391, the
     * LoRA skinny products 5-50%), yet the trainer's steady rate did not move (134,556 / 136,039 tok/s without,
     * 132,861 / 137,823 with, alternated in one call): timed back to back the skinny products' inputs sit in L2,
     * which they do not in a step. Off until a timing that resembles the step's says otherwise.
     */
    static final String AUTOTUNE = System.getProperty("jtune.cuda.matmulAutotune", "false");
    static final int CANDIDATES = 8;
    static final int REPEATS = 3;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;
    private final CudaStream stream;
    private final long workspace;
    private final Map<Key, Plan> plans = new ConcurrentHashMap<>();
    private static final int MAX_ALPHAS = 256;
    private final Map<Alpha, MemorySegment> alphas = new ConcurrentHashMap<>();

    LtMatmul(CudaStream stream, long workspace) {
        this.stream = stream;
        this.workspace = workspace;
        MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
        checkCublasLt(CublasLt.cublasLtCreate(out), "cublasLtCreate");
        this.handle = out.get(ValueLayout.ADDRESS, 0);
    }

    /** See {@link dev.jtune.engine.backend.Backend#matmul}. */
    void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, double alpha, boolean accumulate) {
        Key key = Key.of(Operand.of(a), transA, Operand.of(b), transB, Operand.of(out));
        Plan plan = plans.computeIfAbsent(key, this::plan);
        // candidates only come with the autotune on; a plain read first keeps tuned plans off the atomic
        if (!accumulate && plan.count > 1 && !plan.tuned.get() && plan.tuned.compareAndSet(false, true)) {
            tune(key, plan, a, b, out);
        }
        boolean f64 = key.in == DType.F64;
        if (alpha == 1.0) {
            run(key, plan, plan.one, a, b, out, accumulate);
        } else if (alphas.size() < MAX_ALPHAS) {
            run(key, plan, alphas.computeIfAbsent(new Alpha(alpha, f64), x -> scalar(f64, alpha)), a, b, out, accumulate);
        } else {
            // past the cache, the scalar lives in an arena of its own, freed only after the product ran
            try (Arena scalar = Arena.ofConfined()) {
                run(key, plan, f64 ? scalar.allocateFrom(ValueLayout.JAVA_DOUBLE, alpha) : scalar.allocateFrom(ValueLayout.JAVA_FLOAT, (float) alpha),
                        a, b, out, accumulate);
                stream.synchronize();
            }
        }
    }

    /** A host scalar for alpha (the pointer mode is host's), kept for the process: a handful of values (LoRA's scale). */
    private record Alpha(double value, boolean f64) {
    }

    private void run(Key key, Plan plan, MemorySegment alpha, Tensor a, Tensor b, Tensor out, boolean accumulate) {
        checkCublasLt(launch(plan, plan.algo, alpha, a, b, out, accumulate), "cublasLtMatmul(" + describe(key) + ")");
    }

    private int launch(Plan plan, MemorySegment algo, MemorySegment alpha, Tensor a, Tensor b, Tensor out, boolean accumulate) {
        // Column-major view: D (n x m) = op(B') (n x k) @ op(A') (k x m), with B' = b's buffer and A' = a's.
        return CublasLt.cublasLtMatmul(handle, plan.desc, alpha,
                MemorySegment.ofAddress(b.address()), plan.layoutA,
                MemorySegment.ofAddress(a.address()), plan.layoutB,
                accumulate ? plan.one : plan.zero, MemorySegment.ofAddress(out.address()), plan.layoutC,
                MemorySegment.ofAddress(out.address()), plan.layoutC,
                algo, MemorySegment.ofAddress(workspace), WORKSPACE_BYTES, stream.handle());
    }

    /**
     * Times each candidate on the call's operands (its output is overwritten, so the runs leave nothing behind; the
     * real product follows) and copies the fastest into the plan. A candidate cuBLASLt refuses to launch is skipped.
     */
    private void tune(Key key, Plan plan, Tensor a, Tensor b, Tensor out) {
        long size = CublasLt.cublasLtMatmulHeuristicResult_t.LAYOUT.byteSize();
        float[] ms = new float[plan.count];
        int best = 0;
        try (CudaEvent start = new CudaEvent(true); CudaEvent end = new CudaEvent(true)) {
            for (int i = 0; i < plan.count; i++) {
                MemorySegment algo = plan.candidates.asSlice(i * size, size);
                if (launch(plan, algo, plan.one, a, b, out, false) != 0) {
                    ms[i] = Float.POSITIVE_INFINITY;
                    continue;
                }
                start.record(stream);
                for (int r = 0; r < REPEATS; r++) {
                    checkCublasLt(launch(plan, algo, plan.one, a, b, out, false), "cublasLtMatmul(" + describe(key) + ", candidate " + i + ")");
                }
                end.record(stream);
                end.synchronize();
                ms[i] = CudaEvent.elapsedMillis(start, end) / REPEATS;
                if (ms[i] < ms[best]) {
                    best = i;
                }
            }
        }
        MemorySegment.copy(plan.candidates, best * size, plan.algo, 0, size);
        if (AUTOTUNE.equals("verbose")) {
            System.err.printf(Locale.ROOT, "matmul autotune %s: heuristic's first %.4f ms, candidate %d of %d %.4f ms%n",
                    describe(key), ms[0], best, plan.count, ms[best]);
        }
    }

    private Plan plan(Key key) {
        int inType = dataType(key.in);
        int outType = dataType(key.out);
        boolean f64 = key.in == DType.F64;
        int compute = f64 ? Cublas.CUBLAS_COMPUTE_64F : Cublas.CUBLAS_COMPUTE_32F;
        int scaleType = f64 ? Cublas.CUDA_R_64F : Cublas.CUDA_R_32F;
        MemorySegment descOut = arena.allocate(ValueLayout.ADDRESS);
        checkCublasLt(CublasLt.cublasLtMatmulDescCreate(descOut, compute, scaleType), "cublasLtMatmulDescCreate");
        MemorySegment desc = descOut.get(ValueLayout.ADDRESS, 0);
        // cuBLASLt's A is our b, its B is our a (see the class comment).
        setDesc(desc, CublasLt.CUBLASLT_MATMUL_DESC_TRANSA, key.transB ? Cublas.CUBLAS_OP_T : Cublas.CUBLAS_OP_N);
        setDesc(desc, CublasLt.CUBLASLT_MATMUL_DESC_TRANSB, key.transA ? Cublas.CUBLAS_OP_T : Cublas.CUBLAS_OP_N);
        // b's buffer is column-major (n x k), or (k x n) when transposed, its leading dimension b's row stride (n or k
        // when contiguous; more for a 2-D column slice), and likewise a's and out's.
        MemorySegment layoutA = key.transB
                ? layout(inType, key.k, key.n, key.ldB, key.batch, key.sharedB ? 0 : key.n * key.k)
                : layout(inType, key.n, key.k, key.ldB, key.batch, key.sharedB ? 0 : key.n * key.k);
        MemorySegment layoutB = key.transA
                ? layout(inType, key.m, key.k, key.ldA, key.batch, key.m * key.k)
                : layout(inType, key.k, key.m, key.ldA, key.batch, key.m * key.k);
        MemorySegment layoutC = layout(outType, key.n, key.m, key.ldOut, key.batch, key.n * key.m);

        MemorySegment prefOut = arena.allocate(ValueLayout.ADDRESS);
        checkCublasLt(CublasLt.cublasLtMatmulPreferenceCreate(prefOut), "cublasLtMatmulPreferenceCreate");
        MemorySegment pref = prefOut.get(ValueLayout.ADDRESS, 0);
        // The heuristic result begins with the algorithm, so the result itself serves as cublasLtMatmulAlgo_t*.
        int wanted = AUTOTUNE.equals("false") ? 1 : CANDIDATES;
        MemorySegment candidates = arena.allocate(CublasLt.cublasLtMatmulHeuristicResult_t.LAYOUT, wanted);
        int found;
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment ws = tmp.allocateFrom(ValueLayout.JAVA_LONG, WORKSPACE_BYTES);
            checkCublasLt(CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, CublasLt.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws, 8L),
                    "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
            int[][] alignments = {
                    {CublasLt.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.alignB},
                    {CublasLt.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.alignA},
                    {CublasLt.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.alignOut},
                    {CublasLt.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.alignOut}};
            for (int[] al : alignments) {
                checkCublasLt(CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, al[0], tmp.allocateFrom(ValueLayout.JAVA_INT, al[1]), 4L),
                        "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
            }
            MemorySegment count = tmp.allocate(ValueLayout.JAVA_INT);
            checkCublasLt(CublasLt.cublasLtMatmulAlgoGetHeuristic(handle, desc, layoutA, layoutB, layoutC, layoutC, pref, wanted, candidates,
                    count), "cublasLtMatmulAlgoGetHeuristic(" + describe(key) + ")");
            found = count.get(ValueLayout.JAVA_INT, 0);
            if (found == 0) {
                throw new UnsupportedOpException("matmul: cuBLASLt has no algorithm for " + describe(key));
            }
        } finally {
            checkCublasLt(CublasLt.cublasLtMatmulPreferenceDestroy(pref), "cublasLtMatmulPreferenceDestroy");
        }
        MemorySegment algo = arena.allocate(CublasLt.cublasLtMatmulHeuristicResult_t.LAYOUT);
        MemorySegment.copy(candidates, 0, algo, 0, algo.byteSize());
        return new Plan(desc, layoutA, layoutB, layoutC, algo, candidates, found, new AtomicBoolean(found < 2), scalar(f64, 1.0),
                scalar(f64, 0.0));
    }

    private MemorySegment scalar(boolean f64, double v) {
        return f64 ? arena.allocateFrom(ValueLayout.JAVA_DOUBLE, v) : arena.allocateFrom(ValueLayout.JAVA_FLOAT, (float) v);
    }

    private void setDesc(MemorySegment desc, int attribute, int value) {
        try (Arena tmp = Arena.ofConfined()) {
            checkCublasLt(CublasLt.cublasLtMatmulDescSetAttribute(desc, attribute, tmp.allocateFrom(ValueLayout.JAVA_INT, value), 4L),
                    "cublasLtMatmulDescSetAttribute(" + attribute + ")");
        }
    }

    private MemorySegment layout(int type, long rows, long cols, long ld, long batch, long batchStride) {
        MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
        checkCublasLt(CublasLt.cublasLtMatrixLayoutCreate(out, type, rows, cols, ld), "cublasLtMatrixLayoutCreate");
        MemorySegment layout = out.get(ValueLayout.ADDRESS, 0);
        if (batch > 1) {
            try (Arena tmp = Arena.ofConfined()) {
                checkCublasLt(CublasLt.cublasLtMatrixLayoutSetAttribute(layout, CublasLt.CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                        tmp.allocateFrom(ValueLayout.JAVA_INT, (int) batch), 4L), "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)");
                checkCublasLt(CublasLt.cublasLtMatrixLayoutSetAttribute(layout, CublasLt.CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                        tmp.allocateFrom(ValueLayout.JAVA_LONG, batchStride), 8L), "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)");
            }
        }
        return layout;
    }

    private static int dataType(DType t) {
        return switch (t) {
            case F64 -> Cublas.CUDA_R_64F;
            case F32 -> Cublas.CUDA_R_32F;
            case BF16 -> Cublas.CUDA_R_16BF;
            case F16 -> Cublas.CUDA_R_16F;
            default -> throw new UnsupportedOpException("matmul: cuBLASLt path takes F64, F32, BF16 or F16, not " + t);
        };
    }

    /** The largest power of two (up to 256) dividing the address: what cuBLASLt may assume. */
    static int alignment(long address) {
        int a = 256;
        while (a > 1 && address % a != 0) {
            a >>= 1;
        }
        return a;
    }

    private static String describe(Key k) {
        return (k.batch > 1 ? k.batch + " x " : "") + "[" + k.m + ", " + k.k + "]" + (k.transA ? "^T" : "") + " @ [" + k.k + ", " + k.n + "]"
                + (k.transB ? "^T" : "") + (k.sharedB ? " (b shared)" : "") + " " + k.in + " -> " + k.out
                + " (row strides " + k.ldA + ", " + k.ldB + ", " + k.ldOut + ")";
    }

    @Override
    public void close() {
        checkCublasLt(CublasLt.cublasLtDestroy(handle), "cublasLtDestroy");
        arena.close();
    }
}
