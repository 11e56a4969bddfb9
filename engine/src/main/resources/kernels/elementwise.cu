// Element-wise kernels: binary arithmetic, scaling, strided copies with dtype conversion, fills and the
// counter-based random generator (the same formulas as dev.jtune.engine.backend.CounterRng).
#include "rows.cuh"

// The chunked variants below take layouts in units of CHUNK elements (the host builds them when every tensor's
// innermost dimension is contiguous and a multiple of CHUNK, and addresses allow 16-byte accesses): one index
// computation and 16-byte loads and stores per CHUNK elements instead of per element.
// From ElementwiseKernels.java: CHUNK, the codes of BinaryOp (OP_*) and of Distribution (DIST_*), its ordinals.
#if !defined(CHUNK) || !defined(OP_ADD) || !defined(OP_SUB) || !defined(OP_MUL) || !defined(OP_DIV) || !defined(DIST_NORMAL) || !defined(DIST_UNIFORM)
#error "CHUNK, OP_ADD, OP_SUB, OP_MUL, OP_DIV, DIST_NORMAL and DIST_UNIFORM come from ElementwiseKernels.java's KernelSource"
#endif
// From CounterRng.java, through ElementwiseKernels.java: SplitMix64's multipliers and the counter increment.
#if !defined(RNG_MIX_A) || !defined(RNG_MIX_B) || !defined(RNG_GAMMA)
#error "RNG_MIX_A, RNG_MIX_B and RNG_GAMMA come from CounterRng.java through ElementwiseKernels.java's KernelSource"
#endif

template <typename T>
__device__ void binary(int op, const T* a, const Layout& la, const T* b, const Layout& lb, T* out, i64 n) {
    JT_FOR(i, n) {
        typename Acc<T>::type x = load_acc<T>(a[strided_offset(la, i)]);
        typename Acc<T>::type y = load_acc<T>(b[strided_offset(lb, i)]);
        typename Acc<T>::type r;
        switch (op) {
            case OP_ADD: r = x + y; break;
            case OP_SUB: r = x - y; break;
            case OP_MUL: r = x * y; break;
            default: r = x / y; break;
        }
        out[i] = store_acc<T>(r);
    }
}

template <typename T>
__device__ void binary_chunks(int op, const T* a, const Layout& la, const T* b, const Layout& lb, T* out, i64 chunks) {
    typedef typename Acc<T>::type A;
    JT_FOR(i, chunks) {
        A x[CHUNK];
        A y[CHUNK];
        load_chunk<T, CHUNK>(a + strided_offset(la, i) * CHUNK, x);
        load_chunk<T, CHUNK>(b + strided_offset(lb, i) * CHUNK, y);
#pragma unroll
        for (int k = 0; k < CHUNK; k++) {
            switch (op) {
                case OP_ADD: x[k] = x[k] + y[k]; break;
                case OP_SUB: x[k] = x[k] - y[k]; break;
                case OP_MUL: x[k] = x[k] * y[k]; break;
                default: x[k] = x[k] / y[k]; break;
            }
        }
        store_chunk<T, CHUNK>(out + i * CHUNK, x);
    }
}

template <typename T>
__device__ void scale_chunks(const T* a, const Layout& la, T* out, i64 chunks, double factor) {
    typedef typename Acc<T>::type A;
    A f = (A) factor;
    JT_FOR(i, chunks) {
        A x[CHUNK];
        load_chunk<T, CHUNK>(a + strided_offset(la, i) * CHUNK, x);
#pragma unroll
        for (int k = 0; k < CHUNK; k++) x[k] *= f;
        store_chunk<T, CHUNK>(out + i * CHUNK, x);
    }
}

// CHUNK elements of T as whole words (16 bytes, or 8 for 1-byte types), so they move in registers.
template <typename T> struct Chunk {
    static constexpr int BYTES = (int) sizeof(T) * CHUNK;
    static constexpr int WORD = BYTES < 16 ? BYTES : 16;
    static constexpr int WORDS = BYTES / WORD;
    typedef typename Raw<WORD>::type Word;
    union {
        Word raw[WORDS];
        T e[CHUNK];
    };
};

template <typename S, typename D>
__device__ void copy_chunks(const S* src, const Layout& ls, D* dst, const Layout& ld, i64 chunks) {
    typedef typename Chunk<S>::Word WS;
    typedef typename Chunk<D>::Word WD;
    JT_FOR(i, chunks) {
        Chunk<S> in;
        Chunk<D> out;
        const WS* sp = reinterpret_cast<const WS*>(src + strided_offset(ls, i) * CHUNK);
#pragma unroll
        for (int r = 0; r < Chunk<S>::WORDS; r++) in.raw[r] = sp[r];
#pragma unroll
        for (int k = 0; k < CHUNK; k++) out.e[k] = convert<S, D>(in.e[k]);
        WD* dp = reinterpret_cast<WD*>(dst + strided_offset(ld, i) * CHUNK);
#pragma unroll
        for (int r = 0; r < Chunk<D>::WORDS; r++) dp[r] = out.raw[r];
    }
}

template <typename T>
__device__ void scale(const T* a, const Layout& la, T* out, i64 n, double factor) {
    typename Acc<T>::type f = (typename Acc<T>::type) factor;
    JT_FOR(i, n) {
        out[i] = store_acc<T>(load_acc<T>(a[strided_offset(la, i)]) * f);
    }
}

template <typename S, typename D>
__device__ void copy(const S* src, const Layout& ls, D* dst, const Layout& ld, i64 n) {
    JT_FOR(i, n) {
        dst[strided_offset(ld, i)] = convert<S, D>(src[strided_offset(ls, i)]);
    }
}

// dst += src as a cast of src to D and a binary add would compute it (one pass, no converted copy of src)
template <typename S, typename D>
__device__ void accumulate(const S* src, const Layout& ls, D* dst, const Layout& ld, i64 n) {
    JT_FOR(i, n) {
        D* d = dst + strided_offset(ld, i);
        *d = store_acc<D>(load_acc<D>(*d) + load_acc<D>(convert<S, D>(src[strided_offset(ls, i)])));
    }
}

template <typename T>
__device__ void fill(T* out, i64 n, double value) {
    T v = Num<T>::from_d(value);
    JT_FOR(i, n) {
        out[i] = v;
    }
}

// ---- CounterRng, bit for bit
__device__ __forceinline__ unsigned long long rng_mix(unsigned long long z) {
    z = (z ^ (z >> 30)) * RNG_MIX_A;
    z = (z ^ (z >> 27)) * RNG_MIX_B;
    return z ^ (z >> 31);
}
__device__ __forceinline__ double rng_uniform(unsigned long long seed_mixed, unsigned long long i) {
    unsigned long long bits = rng_mix(seed_mixed + (i + 1ULL) * RNG_GAMMA);
    return ((double) (bits >> 11) + 0.5) * 0x1.0p-53;
}

template <typename T>
__device__ void random(T* out, i64 n, int dist, unsigned long long seed, double p0, double p1) {
    unsigned long long s = rng_mix(seed);
    JT_FOR(i, n) {
        double v;
        if (dist == DIST_NORMAL) {
            double u1 = rng_uniform(s, 2ULL * i);
            double u2 = rng_uniform(s, 2ULL * i + 1ULL);
            v = p0 + p1 * sqrt(-2.0 * log(u1)) * cos(2.0 * 3.141592653589793 * u2);
        } else {
            v = p0 + (p1 - p0) * rng_uniform(s, (unsigned long long) i);
        }
        out[i] = Num<T>::from_d(v);
    }
}

// Inverted dropout with the counter-based mask of CounterRng.uniform(seed, i) >= p (the backward is the same call).
template <typename T>
__device__ void dropout(const T* x, T* out, i64 n, double p, unsigned long long seed) {
    unsigned long long s = rng_mix(seed);
    typename Acc<T>::type keep = (typename Acc<T>::type) (1.0 / (1.0 - p));
    JT_FOR(i, n) {
        bool kept = rng_uniform(s, (unsigned long long) i) >= p;
        out[i] = store_acc<T>(kept ? load_acc<T>(x[i]) * keep : (typename Acc<T>::type) 0);
    }
}

// Soft-capping (Gemma's logit caps): z = cap tanh(x / cap); backward from z: g (1 - (z / cap)^2).
template <typename T>
__device__ void softcap(const T* x, T* out, i64 n, double cap) {
    typedef typename Acc<T>::type A;
    A c = (A) cap;
    JT_FOR(i, n) {
        out[i] = store_acc<T>(c * tanh(load_acc<T>(x[i]) / c));
    }
}

template <typename T>
__device__ void softcap_backward(const T* z, const T* g, T* out, i64 n, double cap) {
    typedef typename Acc<T>::type A;
    A c = (A) cap;
    JT_FOR(i, n) {
        A t = load_acc<T>(z[i]) / c;
        out[i] = store_acc<T>(load_acc<T>(g[i]) * ((A) 1 - t * t));
    }
}

#define JT_BINARY(sfx, T) \
    extern "C" __global__ void binary_##sfx(int op, const T* a, Layout la, const T* b, Layout lb, T* out, i64 n) { binary<T>(op, a, la, b, lb, out, n); } \
    extern "C" __global__ void scale_##sfx(const T* a, Layout la, T* out, i64 n, double factor) { scale<T>(a, la, out, n, factor); } \
    extern "C" __global__ void binary_chunks_##sfx(int op, const T* a, Layout la, const T* b, Layout lb, T* out, i64 n) { binary_chunks<T>(op, a, la, b, lb, out, n); } \
    extern "C" __global__ void scale_chunks_##sfx(const T* a, Layout la, T* out, i64 n, double factor) { scale_chunks<T>(a, la, out, n, factor); } \
    extern "C" __global__ void random_##sfx(T* out, i64 n, int dist, unsigned long long seed, double p0, double p1) { random<T>(out, n, dist, seed, p0, p1); } \
    extern "C" __global__ void dropout_##sfx(const T* x, T* out, i64 n, double p, unsigned long long seed) { dropout<T>(x, out, n, p, seed); } \
    extern "C" __global__ void softcap_##sfx(const T* x, const T* unused, T* out, i64 n, double cap) { softcap<T>(x, out, n, cap); } \
    extern "C" __global__ void softcap_backward_##sfx(const T* z, const T* g, T* out, i64 n, double cap) { softcap_backward<T>(z, g, out, n, cap); }
JT_FLOAT_TYPES(JT_BINARY)

#define JT_FILL(sfx, T) \
    extern "C" __global__ void fill_##sfx(T* out, i64 n, double value) { fill<T>(out, n, value); }
JT_ALL_TYPES(JT_FILL)

#define JT_COPY(ss, S, ds, D) \
    extern "C" __global__ void copy_##ss##_##ds(const S* src, Layout ls, D* dst, Layout ld, i64 n) { copy<S, D>(src, ls, dst, ld, n); } \
    extern "C" __global__ void copy_chunks_##ss##_##ds(const S* src, Layout ls, D* dst, Layout ld, i64 n) { copy_chunks<S, D>(src, ls, dst, ld, n); }
#define JT_COPY_FROM(ss, S) \
    JT_COPY(ss, S, f64, double) JT_COPY(ss, S, f32, float) JT_COPY(ss, S, bf16, __nv_bfloat16) JT_COPY(ss, S, f16, __half) \
    JT_COPY(ss, S, i64, i64) JT_COPY(ss, S, i32, int) JT_COPY(ss, S, u8, u8)
JT_ALL_TYPES(JT_COPY_FROM)

#define JT_ACCUMULATE(ss, S, ds, D) \
    extern "C" __global__ void accumulate_##ss##_##ds(const S* src, Layout ls, D* dst, Layout ld, i64 n) { accumulate<S, D>(src, ls, dst, ld, n); }
#define JT_ACCUMULATE_FROM(ss, S) \
    JT_ACCUMULATE(ss, S, f64, double) JT_ACCUMULATE(ss, S, f32, float) JT_ACCUMULATE(ss, S, bf16, __nv_bfloat16) JT_ACCUMULATE(ss, S, f16, __half)
JT_FLOAT_TYPES(JT_ACCUMULATE_FROM)
