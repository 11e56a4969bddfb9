// Optimizer step and gradient-norm clipping: one AdamW step (torch.optim.AdamW's single-tensor formulas) per tensor
// or over a group's flat buffers in one launch, a deterministic sum of squares (fixed grid of block partials, then one block adds them in order) and the
// clip_grad_norm_ coefficient.
#include "rows.cuh"

#ifndef FLAT_ALIGNMENT
#error "FLAT_ALIGNMENT (FlatLayout.ALIGNMENT) must be defined by the launch class"
#endif

// AdamW's constants in the update's precision A: decay = 1 - lr * weightDecay, w1 = 1 - beta1, w2 = 1 - beta2,
// stepSize = lr / (1 - beta1^t), bc2Sqrt = sqrt(1 - beta2^t), all from the host in double; scale = gradScale[0]
// when gradScale (a one-element F32/F64 tensor) is not null.
template <typename A> struct AdamWConsts {
    bool scaled;
    A scale, dec, a1, b2, a2, ep, step, bc2;
    __device__ AdamWConsts(const void* gradScale, int gradScaleF64, double decay, double w1, double beta2, double w2, double eps,
                           double stepSize, double bc2Sqrt)
        : scaled(gradScale != nullptr), scale(gradScale != nullptr ? (A) read_scalar(gradScale, gradScaleF64) : (A) 1),
          dec((A) decay), a1((A) w1), b2((A) beta2), a2((A) w2), ep((A) eps), step((A) stepSize), bc2((A) bc2Sqrt) {}
};

// Exactly rounded operations, never contracted into FMAs by NVVM or ptxas: where the compiler would otherwise choose
// which multiply to fuse from the surrounding code, the per-tensor and the flat kernel could differ in the last bit.
__device__ __forceinline__ float rn_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double rn_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float rn_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double rn_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float rn_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double rn_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float rn_fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double rn_fma(double a, double b, double c) { return __fma_rn(a, b, c); }

// One element of torch.optim.AdamW's single-tensor step: updates mi and vi, returns the new weight. The per-tensor
// and the flat kernels both call it, and every rounding in it is explicit, so they compute the same bits.
template <typename A>
__device__ __forceinline__ A adamw_element(const AdamWConsts<A>& c, A g, A p, A& mi, A& vi) {
    if (c.scaled) g = rn_mul(g, c.scale);
    p = rn_mul(p, c.dec);
    const A d = rn_sub(g, mi);
    // torch's lerp(m, g, w1): m + w1 (g - m) below one half, else g - (g - m)(1 - w1)
    mi = c.a1 < (A) 0.5 ? rn_fma(c.a1, d, mi) : rn_fma(-d, rn_sub((A) 1, c.a1), g);
    vi = rn_fma(vi, c.b2, rn_mul(rn_mul(c.a2, g), g));
    const A denom = rn_add(jt_sqrt(vi) / c.bc2, c.ep);
    return rn_fma(-c.step, mi / denom, p);
}

// Any float param dtype with any float grad dtype (the contract's pairs are the grad in the param's dtype or F32;
// an F32 master copy may also be stepped with a 16-bit gradient). m and v are F32 (F64 for F64 params).
template <typename P, typename G>
__device__ void adamw(P* param, const G* grad, typename Stat<P>::type* m, typename Stat<P>::type* v, const void* gradScale,
                      int gradScaleF64, i64 n, double decay, double w1, double beta2, double w2, double eps, double stepSize,
                      double bc2Sqrt) {
    typedef typename Acc<P>::type A;
    typedef typename Stat<P>::type M;
    const AdamWConsts<A> c(gradScale, gradScaleF64, decay, w1, beta2, w2, eps, stepSize, bc2Sqrt);
    JT_FOR(i, n) {
        A mi = (A) m[i];
        A vi = (A) v[i];
        A p = adamw_element<A>(c, (A) load_acc<G>(grad[i]), load_acc<P>(param[i]), mi, vi);
        m[i] = (M) mi;
        v[i] = (M) vi;
        param[i] = store_acc<P>(p);
    }
}

#define JT_ADAMW(ps, P, gs, G) \
    extern "C" __global__ void adamw_##ps##_##gs(P* param, const G* grad, Stat<P>::type* m, Stat<P>::type* v, const void* gradScale, \
                                                int gradScaleF64, i64 n, double decay, double w1, double beta2, double w2, double eps, \
                                                double stepSize, double bc2Sqrt) { \
        adamw<P, G>(param, grad, m, v, gradScale, gradScaleF64, n, decay, w1, beta2, w2, eps, stepSize, bc2Sqrt); }
#define JT_ADAMW_P(ps, P) \
    JT_ADAMW(ps, P, f64, double) JT_ADAMW(ps, P, f32, float) JT_ADAMW(ps, P, bf16, __nv_bfloat16) JT_ADAMW(ps, P, f16, __half)
JT_FLOAT_TYPES(JT_ADAMW_P)

// The multi-tensor step over one group's flat buffers (optim.FlatLayout): grad, master (F32, or null: the parameter
// itself is the weight stepped), m and v hold entry e's element k at table[e].offset + k; table holds per entry
// (parameter address, offset, numel) as i64 triples, entries sorted by offset, each offset a multiple of
// FLAT_ALIGNMENT. A block (FLAT_ALIGNMENT threads) takes one aligned tile of FLAT_ALIGNMENT elements at a time, which
// lies inside one entry's span: it finds that entry by binary search (every thread of the block reads the same table
// words) and skips the alignment gap after the entry's end. With a master copy, the new weight is stored in the master
// and rounded into the parameter as a copy kernel rounds it, so each element's bits are those of the per-tensor
// kernel followed by a copy of the master into the parameter.
// Every element of a flat layout's entries, a block (FLAT_ALIGNMENT threads) an aligned tile at a time: at(i, e, k)
// for flat element i, entry e's element k (table rows (address, offset, numel), sorted by offset; a tile lies inside
// one entry's span, found by binary search, every thread of the block reading the same words), the gaps skipped.
template <typename F>
__device__ __forceinline__ void for_each_flat(const i64* table, int entries, i64 n, F at) {
    const i64 tiles = n / FLAT_ALIGNMENT;
    for (i64 tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const i64 start = tile * FLAT_ALIGNMENT;
        int lo = 0;
        int hi = entries - 1;
        while (lo < hi) {  // the last entry that starts at or before this tile
            int mid = (lo + hi + 1) >> 1;
            if (table[3 * mid + 1] <= start) lo = mid;
            else hi = mid - 1;
        }
        const i64 i = start + threadIdx.x;
        const i64 k = i - table[3 * lo + 1];
        if (k < 0 || k >= table[3 * lo + 2]) continue;  // an alignment gap
        at(i, lo, k);
    }
}

template <typename P, typename G>
__device__ void adamw_flat(const i64* table, int entries, const G* grad, float* master, typename Stat<P>::type* m,
                           typename Stat<P>::type* v, const void* gradScale, int gradScaleF64, i64 n, double decay, double w1,
                           double beta2, double w2, double eps, double stepSize, double bc2Sqrt) {
    typedef typename Acc<P>::type A;
    typedef typename Stat<P>::type M;
    const AdamWConsts<A> c(gradScale, gradScaleF64, decay, w1, beta2, w2, eps, stepSize, bc2Sqrt);
    for_each_flat(table, entries, n, [&](i64 i, int lo, i64 k) {
        P* param = reinterpret_cast<P*>(table[3 * lo]);
        A mi = (A) m[i];
        A vi = (A) v[i];
        A w = master != nullptr ? (A) master[i] : load_acc<P>(param[k]);
        A p = adamw_element<A>(c, (A) load_acc<G>(grad[i]), w, mi, vi);
        m[i] = (M) mi;
        v[i] = (M) vi;
        if (master != nullptr) {
            const float f = (float) p;
            master[i] = f;
            param[k] = convert<float, P>(f);
        } else {
            param[k] = store_acc<P>(p);
        }
    });
}

#define JT_ADAMW_FLAT(ps, P, gs, G) \
    extern "C" __global__ void adamw_flat_##ps##_##gs(const i64* table, int entries, const G* grad, float* master, Stat<P>::type* m, \
                                                     Stat<P>::type* v, const void* gradScale, int gradScaleF64, i64 n, double decay, \
                                                     double w1, double beta2, double w2, double eps, double stepSize, double bc2Sqrt) { \
        adamw_flat<P, G>(table, entries, grad, master, m, v, gradScale, gradScaleF64, n, decay, w1, beta2, w2, eps, stepSize, bc2Sqrt); }
#define JT_ADAMW_FLAT_P(ps, P) \
    JT_ADAMW_FLAT(ps, P, f64, double) JT_ADAMW_FLAT(ps, P, f32, float) JT_ADAMW_FLAT(ps, P, bf16, __nv_bfloat16) \
    JT_ADAMW_FLAT(ps, P, f16, __half)
JT_FLOAT_TYPES(JT_ADAMW_FLAT_P)

// Every parameter of a flat table converted into a flat buffer of another dtype at its entry's offset, as a copy
// kernel converts (the alignment gaps untouched): the compute-dtype copies of a group's parameters in one launch
// (nn.ComputeCopies), over the layout as adamw_flat goes.
template <typename P, typename O>
__device__ void cast_flat(const i64* table, int entries, O* out, i64 n) {
    for_each_flat(table, entries, n, [&](i64 i, int lo, i64 k) { out[i] = convert<P, O>(reinterpret_cast<const P*>(table[3 * lo])[k]); });
}

#define JT_CAST_FLAT(ps, P, os, O) \
    extern "C" __global__ void cast_flat_##ps##_##os(const i64* table, int entries, O* out, i64 n) { cast_flat<P, O>(table, entries, out, n); }
#define JT_CAST_FLAT_P(ps, P) \
    JT_CAST_FLAT(ps, P, f64, double) JT_CAST_FLAT(ps, P, f32, float) JT_CAST_FLAT(ps, P, bf16, __nv_bfloat16) JT_CAST_FLAT(ps, P, f16, __half)
JT_FLOAT_TYPES(JT_CAST_FLAT_P)

// partial[blockIdx.x] = sum of x^2 over this block's grid-stride share; blockDim.x is a multiple of 32.
template <typename T, int VEC>
__device__ void sum_squares_partial(const T* x, i64 n, typename Acc<T>::type* partial) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    A s = 0;
    JT_FOR(k, n / VEC) {
        A v[VEC];
        load_chunk<T, VEC>(x + k * VEC, v);
#pragma unroll
        for (int q = 0; q < VEC; q++) s += v[q] * v[q];
    }
    s = row_sum(s, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block: out[0] += the partials, added in a fixed order. out: a one-element F32 or F64 (outF64) tensor; the
// addition runs in the wider of its type and the accumulation type.
template <typename A>
__device__ void sum_squares_finish(const A* partial, i64 parts, void* out, int outF64) {
    __shared__ A scratch[32];
    A s = 0;
    for (i64 i = threadIdx.x; i < parts; i += blockDim.x) s += partial[i];
    s = row_sum(s, scratch);
    if (threadIdx.x == 0) {
        if (outF64) {
            double* o = static_cast<double*>(out);
            o[0] = o[0] + (double) s;
        } else {
            float* o = static_cast<float*>(out);
            o[0] = (float) ((A) o[0] + s);
        }
    }
}

#define JT_SSQ_V(sfx, T, name, V) \
    extern "C" __global__ void sum_squares_##sfx##name(const T* x, i64 n, Acc<T>::type* partial) { sum_squares_partial<T, V>(x, n, partial); }
#define JT_SSQ(sfx, T) JT_SSQ_V(sfx, T, , 1) JT_SSQ_V(sfx, T, _vec, Vec<T>::N)
JT_FLOAT_TYPES(JT_SSQ)

extern "C" __global__ void sum_squares_finish_f32(const float* partial, i64 parts, void* out, int outF64) {
    sum_squares_finish<float>(partial, parts, out, outF64);
}
extern "C" __global__ void sum_squares_finish_f64(const double* partial, i64 parts, void* out, int outF64) {
    sum_squares_finish<double>(partial, parts, out, outF64);
}

// coef[0] = min(1, maxNorm / (sqrt(ss[0]) + 1e-6)), in double and rounded once; NaN stays NaN. Either tensor F32 or F64.
extern "C" __global__ void clip_coefficient(const void* ss, int ssF64, double maxNorm, void* coef, int coefF64) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        double c = maxNorm / (sqrt(read_scalar(ss, ssF64)) + 1e-6);
        write_scalar(coef, coefF64, c != c ? c : (c < 1.0 ? c : 1.0));
    }
}
