// RMSNorm forward and backward over the last axis of x [N, D]; rstd and gradWeight are F32 (F64 for F64 x).
// Rows are spread over warps or blocks (see rows.cuh); VEC elements of x (and out, gradOut, gradX) move per
// access where the host found them aligned.
// The weight may have any float dtype and is read element by element (it is small and stays in L1).
//
// The _residual kernels fuse the residual stream's add: forward sum = x + h (rounded to T, as the unfused add stores it)
// is written and normalised in the same pass; backward adds gradSum (the gradient the sum got from its other uses)
// to the norm's input gradient rounded to T (as the unfused norm stores it and the add adds it), which is then the
// gradient of both x and h: the unfused ops' values bit for bit.
//
// The weight gradient is deterministic without atomics: each row slot (one per (block, threadIdx.y)) sums its
// rows' contributions into its own line, always by the same thread for the same column. The lines live in the
// block's shared memory when they fit (slotsShared: the block adds its lines in order into one line of the scratch
// [blocks, D] at its end) or else in the scratch itself [blocks * rows, D]; rms_norm_weight_reduce then adds the
// scratch's lines in a fixed order. Within a line, column k * VEC + q sits at q * (D / VEC) + k, so a warp's lanes
// touch consecutive words (no shared-memory bank conflicts, coalesced scratch).
#include "rope.cuh"

// The weight reduce's block (NormKernels.java): NORM_REDUCE_COLUMNS columns in x, NORM_REDUCE_ROWS slot rows in y.
#if !defined(NORM_REDUCE_COLUMNS) || !defined(NORM_REDUCE_ROWS)
#error "NORM_REDUCE_COLUMNS and NORM_REDUCE_ROWS come from NormKernels.java's KernelSource"
#endif
// The _held kernels' rows (NormKernels.java): a warp a row, at most NORM_HELD chunks a lane, held in registers.
#ifndef NORM_HELD
#error "NORM_HELD comes from NormKernels.java's KernelSource"
#endif

// The fused norm and rotation (NormKernels.java): the heads of a row whose chunks a lane loads together, the most
// threads a block, and the blocks an SM that its 16-bit forward's registers leave room for (the host's grid cap).
#if !defined(NORM_ROPE_GROUP) || !defined(NORM_ROPE_THREADS) || !defined(NORM_ROPE_BLOCKS)
#error "NORM_ROPE_GROUP, NORM_ROPE_THREADS and NORM_ROPE_BLOCKS come from NormKernels.java's KernelSource"
#endif

template <typename W, typename A>
__device__ __forceinline__ A weight_at(const W* w, i64 j, int offsetOne) {
    A v = (A) load_acc<W>(w[j]);
    return offsetOne ? (A) 1 + v : v;
}

// ---- The _held kernels: a warp's row held in registers (the host launches them on rows of at most 32 x NORM_HELD
// chunks under the warp-a-row layout: Gemma 270M's 640 in bf16): a lane loads its chunks (and h's) together, so a row
// costs one memory latency, and normalises from the registers instead of reading the row again. The arithmetic is the
// two-pass loop's, in the same order (the same bits). Kernels of their own, so that the others keep their registers.
// This lane's chunks k = lane + 32 u (u < NORM_HELD) of row `row` of p [n, d], those inside the row loaded.
template <typename T, int VEC>
__device__ __forceinline__ void load_lane_chunks(const T* p, i64 row, i64 d, int chunks, typename Raw<(int) sizeof(T) * VEC>::type* raw) {
    typedef typename Raw<(int) sizeof(T) * VEC>::type R;
#pragma unroll
    for (int u = 0; u < NORM_HELD; u++) {
        const int k = (int) threadIdx.x + 32 * u;
        if (k < chunks) raw[u] = *reinterpret_cast<const R*>(p + row * d + (i64) k * VEC);
    }
}

template <typename T, typename W, int VEC>
__device__ void rms_norm_held(const T* x, const T* h, T* sum, const W* w, T* out, typename Stat<T>::type* rstd, i64 n, i64 d,
                              double eps, int offsetOne) {
    typedef typename Acc<T>::type A;
    typedef typename Raw<(int) sizeof(T) * VEC>::type R;
    const int chunks = (int) (d / VEC);
    const int lane = threadIdx.x;
    JT_ROWS(row, n) {
        R xraw[NORM_HELD];
        R hraw[NORM_HELD];
        load_lane_chunks<T, VEC>(x, row, d, chunks, xraw);
        if (h != nullptr) load_lane_chunks<T, VEC>(h, row, d, chunks, hraw);
        A v[NORM_HELD][VEC];
        A ss = 0;
#pragma unroll
        for (int u = 0; u < NORM_HELD; u++) {
            const int k = lane + 32 * u;
            if (k < chunks) {
                const T* e = reinterpret_cast<const T*>(&xraw[u]);
#pragma unroll
                for (int q = 0; q < VEC; q++) v[u][q] = load_acc<T>(e[q]);
                if (h != nullptr) {
                    const T* f = reinterpret_cast<const T*>(&hraw[u]);
#pragma unroll
                    for (int q = 0; q < VEC; q++) v[u][q] = load_acc<T>(store_acc<T>(v[u][q] + load_acc<T>(f[q])));  // the sum as T holds it
                    store_chunk<T, VEC>(sum + row * d + (i64) k * VEC, v[u]);
                }
#pragma unroll
                for (int q = 0; q < VEC; q++) ss += v[u][q] * v[u][q];
            }
        }
        ss = warp_reduce(ss, SumOp());
        A r = (A) 1 / jt_sqrt(ss / (A) d + (A) eps);
        if (lane == 0) rstd[row] = (typename Stat<T>::type) r;
#pragma unroll
        for (int u = 0; u < NORM_HELD; u++) {
            const int k = lane + 32 * u;
            if (k < chunks) {
#pragma unroll
                for (int q = 0; q < VEC; q++) v[u][q] = v[u][q] * r * weight_at<W, A>(w, (i64) k * VEC + q, offsetOne);
                store_chunk<T, VEC>(out + row * d + (i64) k * VEC, v[u]);
            }
        }
    }
}

// h and sum null: the plain norm of x. Otherwise x + h, rounded to T, goes to sum and is what is normalised (each
// thread reads back only the chunks it wrote, so sum may be x).
template <typename T, typename W, int VEC, bool HELD>
__device__ void rms_norm(const T* x, const T* h, T* sum, const W* w, T* out, typename Stat<T>::type* rstd, i64 n, i64 d,
                         double eps, int offsetOne) {
    if constexpr (HELD) {
        rms_norm_held<T, W, VEC>(x, h, sum, w, out, rstd, n, d, eps, offsetOne);
        return;
    }
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    const i64 chunks = d / VEC;
    JT_ROWS(row, n) {
        const T* xr = x + row * d;
        A ss = 0;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A v[VEC];
            load_chunk<T, VEC>(xr + k * VEC, v);
            if (h != nullptr) {
                A hv[VEC];
                load_chunk<T, VEC>(h + row * d + k * VEC, hv);
#pragma unroll
                for (int q = 0; q < VEC; q++) v[q] = load_acc<T>(store_acc<T>(v[q] + hv[q]));  // the sum as T holds it
                store_chunk<T, VEC>(sum + row * d + k * VEC, v);
            }
#pragma unroll
            for (int q = 0; q < VEC; q++) ss += v[q] * v[q];
        }
        if (h != nullptr) xr = sum + row * d;
        ss = row_sum(ss, scratch);
        A r = (A) 1 / jt_sqrt(ss / (A) d + (A) eps);
        if (threadIdx.x == 0) rstd[row] = (typename Stat<T>::type) r;
        T* orow = out + row * d;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A v[VEC];
            load_chunk<T, VEC>(xr + k * VEC, v);
#pragma unroll
            for (int q = 0; q < VEC; q++) v[q] = v[q] * r * weight_at<W, A>(w, k * VEC + q, offsetOne);
            store_chunk<T, VEC>(orow + k * VEC, v);
        }
    }
}

// The block's slot lines (line y at lines + y * stride, d words each), added in ascending y, become its line of the
// scratch. Every thread of the block calls it after its last contribution.
template <typename A>
__device__ void block_lines_to_scratch(const A* lines, i64 stride, i64 d, A* partial) {
    __syncthreads();
    const int threads = blockDim.x * blockDim.y;
    for (i64 i = threadIdx.y * blockDim.x + threadIdx.x; i < d; i += threads) {
        A t = lines[i];
        for (int y = 1; y < (int) blockDim.y; y++) t += lines[(i64) y * stride + i];
        partial[(i64) blockIdx.x * d + i] = t;
    }
}
template <typename A>
__device__ void block_lines_to_scratch(const A* lines, i64 d, A* partial) { block_lines_to_scratch(lines, d, d, partial); }

// The backward of a row held as rms_norm_held holds it: x's, gradOut's and gradSum's chunks loaded together, then the
// two-pass loop's arithmetic from the registers; mine (null: no weight gradient) is the row slot's line.
template <typename T, typename W, int VEC>
__device__ void rms_norm_backward_held(const T* x, const W* w, const typename Stat<T>::type* rstd, const T* gradOut, const T* gradSum,
                                       T* gradX, typename Acc<T>::type* mine, i64 n, i64 d, int offsetOne) {
    typedef typename Acc<T>::type A;
    typedef typename Raw<(int) sizeof(T) * VEC>::type R;
    const int chunks = (int) (d / VEC);
    const int lane = threadIdx.x;
    JT_ROWS(row, n) {
        R xraw[NORM_HELD];
        R graw[NORM_HELD];
        R sraw[NORM_HELD];
        load_lane_chunks<T, VEC>(x, row, d, chunks, xraw);
        load_lane_chunks<T, VEC>(gradOut, row, d, chunks, graw);
        if (gradSum != nullptr) load_lane_chunks<T, VEC>(gradSum, row, d, chunks, sraw);
        A dot = 0;
#pragma unroll
        for (int u = 0; u < NORM_HELD; u++) {
            const int k = lane + 32 * u;
            if (k < chunks) {
                const T* xe = reinterpret_cast<const T*>(&xraw[u]);
                const T* ge = reinterpret_cast<const T*>(&graw[u]);
#pragma unroll
                for (int q = 0; q < VEC; q++) dot += load_acc<T>(ge[q]) * weight_at<W, A>(w, (i64) k * VEC + q, offsetOne) * load_acc<T>(xe[q]);
            }
        }
        dot = warp_reduce(dot, SumOp());
        A r = (A) rstd[row];
        A c = r * r * r * dot / (A) d;
#pragma unroll
        for (int u = 0; u < NORM_HELD; u++) {
            const int k = lane + 32 * u;
            if (k < chunks) {
                const T* xe = reinterpret_cast<const T*>(&xraw[u]);
                const T* ge = reinterpret_cast<const T*>(&graw[u]);
                const T* se = reinterpret_cast<const T*>(&sraw[u]);
                A o[VEC];
#pragma unroll
                for (int q = 0; q < VEC; q++) {
                    const A gv = load_acc<T>(ge[q]);
                    const A xv = load_acc<T>(xe[q]);
                    o[q] = r * (gv * weight_at<W, A>(w, (i64) k * VEC + q, offsetOne)) - xv * c;
                    if (gradSum != nullptr) o[q] = load_acc<T>(store_acc<T>(o[q])) + load_acc<T>(se[q]);  // as the unfused norm and add round
                    if (mine != nullptr) mine[q * chunks + k] += gv * xv * r;
                }
                store_chunk<T, VEC>(gradX + row * d + (i64) k * VEC, o);  // gradX may be gradOut: read above
            }
        }
    }
}

// gradX = r * g' - x * (r^3 / D) * sum_j g'_j x_j with g' = gradOut * w'; partial (when not null) gets the sum
// over each slot's rows of gradOut * x * r (see the top of this file for its lines and their layout).
// gradSum (may be null) is added to gradX rounded to T first, as the unfused norm's gradient and the add would round
// (the residual kernels: x is the sum), so the fused op's gradients are the unfused ones bit for bit.
template <typename T, typename W, int VEC, bool HELD>
__device__ void rms_norm_backward(const T* x, const W* w, const typename Stat<T>::type* rstd, const T* gradOut, const T* gradSum,
                                  T* gradX, typename Acc<T>::type* partial, i64 n, i64 d, int offsetOne, int slotsShared) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    extern __shared__ __align__(16) unsigned char slotLines[];
    const i64 chunks = d / VEC;
    A* mine = nullptr;
    if (partial != nullptr) {
        mine = slotsShared ? reinterpret_cast<A*>(slotLines) + (i64) threadIdx.y * d
                           : partial + ((i64) blockIdx.x * blockDim.y + threadIdx.y) * d;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
#pragma unroll
            for (int q = 0; q < VEC; q++) mine[q * chunks + k] = (A) 0;
        }
    }
    if constexpr (HELD) {
        rms_norm_backward_held<T, W, VEC>(x, w, rstd, gradOut, gradSum, gradX, mine, n, d, offsetOne);
    } else JT_ROWS(row, n) {
        const T* xr = x + row * d;
        const T* gr = gradOut + row * d;
        A dot = 0;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A xv[VEC];
            A gv[VEC];
            load_chunk<T, VEC>(xr + k * VEC, xv);
            load_chunk<T, VEC>(gr + k * VEC, gv);
#pragma unroll
            for (int q = 0; q < VEC; q++) dot += gv[q] * weight_at<W, A>(w, k * VEC + q, offsetOne) * xv[q];
        }
        dot = row_sum(dot, scratch);
        A r = (A) rstd[row];
        A c = r * r * r * dot / (A) d;
        T* gxr = gradX + row * d;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A xv[VEC];
            A gv[VEC];
            A out[VEC];
            load_chunk<T, VEC>(xr + k * VEC, xv);
            load_chunk<T, VEC>(gr + k * VEC, gv);
            A sv[VEC];
            if (gradSum != nullptr) {
                load_chunk<T, VEC>(gradSum + row * d + k * VEC, sv);
            } else {
#pragma unroll
                for (int q = 0; q < VEC; q++) sv[q] = (A) 0;
            }
#pragma unroll
            for (int q = 0; q < VEC; q++) {
                out[q] = r * (gv[q] * weight_at<W, A>(w, k * VEC + q, offsetOne)) - xv[q] * c;
                if (gradSum != nullptr) out[q] = load_acc<T>(store_acc<T>(out[q])) + sv[q];  // rounded as the unfused norm and add round
                if (mine != nullptr) mine[q * chunks + k] += gv[q] * xv[q] * r;
            }
            store_chunk<T, VEC>(gxr + k * VEC, out);  // gradX may be gradOut: this thread read its elements above
        }
    }
    if (partial != nullptr && slotsShared) block_lines_to_scratch(reinterpret_cast<const A*>(slotLines), d, partial);
}

// gradWeight = the sum of the scratch's lines in ascending line, each line laid out as the backward wrote it (column
// k * vec + q at q * (d / vec) + k): a block of (NORM_REDUCE_COLUMNS, NORM_REDUCE_ROWS) threads covers
// NORM_REDUCE_COLUMNS consecutive words of a line, thread row ty sums lines ty, ty + NORM_REDUCE_ROWS, ... and the
// NORM_REDUCE_ROWS partial sums are added in order (rows padded by one against bank conflicts).
template <typename A>
__device__ void rms_norm_weight_reduce(const A* partial, A* gradWeight, i64 lines, i64 d, i64 vec) {
    __shared__ A part[NORM_REDUCE_ROWS][NORM_REDUCE_COLUMNS + 1];
    i64 i = (i64) blockIdx.x * NORM_REDUCE_COLUMNS + threadIdx.x;
    A s = 0;
    if (i < d) {
#pragma unroll 4
        for (i64 b = threadIdx.y; b < lines; b += blockDim.y) s += partial[b * d + i];
    }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && i < d) {
        A t = part[0][threadIdx.x];
        for (int y = 1; y < (int) blockDim.y; y++) t += part[y][threadIdx.x];
        const i64 chunks = d / vec;
        gradWeight[(i % chunks) * vec + i / chunks] = t;
    }
}

#define JT_NORM_V(xs, T, ws, W, sfx, V, H) \
    extern "C" __global__ void rms_norm_##xs##_##ws##sfx(const T* x, const W* w, T* out, Stat<T>::type* rstd, i64 n, i64 d, double eps, int offsetOne) { \
        rms_norm<T, W, V, H>(x, nullptr, nullptr, w, out, rstd, n, d, eps, offsetOne); } \
    extern "C" __global__ void rms_norm_residual_##xs##_##ws##sfx(const T* x, const T* h, T* sum, const W* w, T* out, Stat<T>::type* rstd, \
                                                                 i64 n, i64 d, double eps, int offsetOne) { \
        rms_norm<T, W, V, H>(x, h, sum, w, out, rstd, n, d, eps, offsetOne); } \
    extern "C" __global__ void rms_norm_backward_##xs##_##ws##sfx(const T* x, const W* w, const Stat<T>::type* rstd, const T* gradOut, T* gradX, \
                                                                 Acc<T>::type* partial, i64 n, i64 d, int offsetOne, int slotsShared) { \
        rms_norm_backward<T, W, V, H>(x, w, rstd, gradOut, nullptr, gradX, partial, n, d, offsetOne, slotsShared); } \
    extern "C" __global__ void rms_norm_residual_backward_##xs##_##ws##sfx(const T* x, const W* w, const Stat<T>::type* rstd, const T* gradOut, \
                                                                          const T* gradSum, T* gradX, Acc<T>::type* partial, i64 n, i64 d, int offsetOne, int slotsShared) { \
        rms_norm_backward<T, W, V, H>(x, w, rstd, gradOut, gradSum, gradX, partial, n, d, offsetOne, slotsShared); }
#define JT_NORM_W(xs, T, ws, W) JT_NORM_V(xs, T, ws, W, , 1, false) JT_NORM_V(xs, T, ws, W, _vec, Vec<T>::N, false) \
    JT_NORM_V(xs, T, ws, W, _vec_held, Vec<T>::N, true)
#define JT_NORM(xs, T) \
    JT_NORM_W(xs, T, f64, double) JT_NORM_W(xs, T, f32, float) JT_NORM_W(xs, T, bf16, __nv_bfloat16) JT_NORM_W(xs, T, f16, __half)
JT_FLOAT_TYPES(JT_NORM)

// ---- RMSNorm then RoPE, the q/k path in one pass: x [B, H, T, D] (strided on B, H, T: the projection's [B, T, H, D]
// read in place) is normalised per row as rms_norm does, rounded to T as the unfused norm stores it, and rotated as
// rope.cu rotates (rope.cuh: HF's rotate-half, fp32 angles, cos and sin in double of the float angle) into out
// [B, H, T, D]. The same arithmetic in the same order as the two unfused kernels (the rotation is rope.cuh's, shared),
// so that the values are theirs bit for bit (the first GPU run, before rope_row spelt its fma out, found F64 outputs one
// ulp apart: not yet run since); what goes is the normed tensor's write and read, and the rotation's own launch.
// A warp takes a (b, t) row at a time (blockDim = (32, warps)) and every head of it: the row's angles are computed once
// for all heads. Shared memory: per warp a row buffer and the row's cos and sin [D] (and, backward, a weight-gradient
// line [D]) in the accumulator type, then invFreq [D / 2] as float for the block. rstd [B * T * H] is in (b, t, h) order.
// The row's cos [D/2] and sin [D/2] (negated when inverse) into cs, a pair index a lane.
template <typename A>
__device__ __forceinline__ void rope_angles(const float* invFreq, int position, A* cs, i64 half, int inverse) {
    for (i64 k = threadIdx.x; k < half; k += 32) rope_cos_sin((float) position, invFreq[k], inverse, cs + k, cs + half + k);
}

// Rotates the row buffer y [D] in place (rope.cuh's rope_rotate), a pair (k, k + D/2) per lane at a time, each rotated
// value rounded to T.
template <typename T, typename A>
__device__ __forceinline__ void rope_row(A* y, const A* cs, i64 half) {
    for (i64 k = threadIdx.x; k < half; k += 32) {
        A o1;
        A o2;
        rope_rotate(y[k], y[k + half], cs[k], cs[half + k], &o1, &o2);
        y[k] = load_acc<T>(store_acc<T>(o1));
        y[k + half] = load_acc<T>(store_acc<T>(o2));
    }
}

__device__ __forceinline__ void inverse_frequencies(float* invFreq, i64 half, i64 d, double base, double scaling) {
    for (i64 k = (i64) threadIdx.y * blockDim.x + threadIdx.x; k < half; k += (i64) blockDim.x * blockDim.y) {
        invFreq[k] = rope_inverse_frequency(k, d, base, scaling);
    }
    __syncthreads();
}

// ---- The rows whose D / VEC chunks fit one warp (up to 32 chunks, an even number: Gemma's heads of 256 in bf16 and
// f16; the host decides, NormKernels.heldRows, and passes held): lane c holds chunk c of each head of a group of NORM_ROPE_GROUP heads in registers, loaded together
// (and the next row's first group while this row's angles are computed), so a row costs one memory latency instead
// of two a head; a rotation pair (k, k + D/2) is chunks c and c + chunks/2 of one q, exchanged by a shuffle. The
// arithmetic is the shared-memory path's, in the same order (the same bits): a lane's squares in q order, the warp's
// butterfly, the norm, its rounding, rope_rotate, its rounding.
// The chunks of heads [h0, h0 + NORM_ROPE_GROUP) of row (bi, ti) that this lane holds (heads past h: not loaded).
template <typename T, int VEC>
__device__ __forceinline__ void load_held(const T* x, i64 bi, i64 ti, i64 h0, i64 h, i64 xsb, i64 xsh, i64 xst, int chunks,
                                          typename Raw<(int) sizeof(T) * VEC>::type* raw) {
    typedef typename Raw<(int) sizeof(T) * VEC>::type R;
    if ((int) threadIdx.x >= chunks) return;
#pragma unroll
    for (int u = 0; u < NORM_ROPE_GROUP; u++) {
        if (h0 + u < h) raw[u] = *reinterpret_cast<const R*>(x + bi * xsb + (h0 + u) * xsh + ti * xst + (i64) threadIdx.x * VEC);
    }
}

template <typename T, typename A, int VEC>
__device__ __forceinline__ void unpack_held(const typename Raw<(int) sizeof(T) * VEC>::type& raw, bool holds, A* v) {
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int q = 0; q < VEC; q++) v[q] = holds ? load_acc<T>(e[q]) : (A) 0;
}

// y rotated with its pair partner's values (rope.cuh's rope_rotate; inverse when cs holds the negated sines), each
// result rounded to T: a lane of the first half holds x1 of its pairs, of the second half x2.
template <typename T, typename A, int VEC>
__device__ __forceinline__ void rotate_held(A* y, const A* cs, i64 half, int chunks) {
    const int lane = threadIdx.x;
    const bool first = lane < chunks / 2;
    const int partner = lane >= chunks ? lane : first ? lane + chunks / 2 : lane - chunks / 2;
#pragma unroll
    for (int q = 0; q < VEC; q++) {
        const A other = __shfl_sync(JT_FULL_MASK, y[q], partner);
        if (lane < chunks) {
            const i64 j = (i64) lane * VEC + q - (first ? 0 : half);
            A o1;
            A o2;
            if (first) {
                rope_rotate(y[q], other, cs[j], cs[half + j], &o1, &o2);
                y[q] = load_acc<T>(store_acc<T>(o1));
            } else {
                rope_rotate(other, y[q], cs[j], cs[half + j], &o1, &o2);
                y[q] = load_acc<T>(store_acc<T>(o2));
            }
        }
    }
}

template <typename T, typename W, int VEC>
__device__ void rms_norm_rope_held(const T* x, const W* w, const int* positions, T* out, typename Stat<T>::type* rstd, i64 b, i64 h,
                                   i64 t, i64 d, i64 xsb, i64 xsh, i64 xst, i64 osb, i64 osh, i64 ost, double eps, int offsetOne,
                                   double base, double scaling) {
    typedef typename Acc<T>::type A;
    typedef typename Raw<(int) sizeof(T) * VEC>::type R;
    extern __shared__ __align__(16) unsigned char rowBuffers[];
    const i64 half = d / 2;
    const int chunks = (int) (d / VEC);
    const bool holds = (int) threadIdx.x < chunks;
    A* cs = reinterpret_cast<A*>(rowBuffers) + (i64) threadIdx.y * 2 * d + d;  // the shared-memory path's slot, its y unused
    float* invFreq = reinterpret_cast<float*>(reinterpret_cast<A*>(rowBuffers) + (i64) blockDim.y * 2 * d);
    const i64 rows = b * t;
    const i64 stride = (i64) gridDim.x * blockDim.y;
    i64 bt = (i64) blockIdx.x * blockDim.y + threadIdx.y;
    R raw[NORM_ROPE_GROUP];
    if (bt < rows) load_held<T, VEC>(x, bt / t, bt - (bt / t) * t, 0, h, xsb, xsh, xst, chunks, raw);  // in flight during the set-up
    inverse_frequencies(invFreq, half, d, base, scaling);
    for (; bt < rows; bt += stride) {
        const i64 bi = bt / t;
        const i64 ti = bt - bi * t;
        rope_angles(invFreq, positions[bt], cs, half, 0);
        __syncwarp();
        for (i64 h0 = 0; h0 < h; h0 += NORM_ROPE_GROUP) {
            if (h0 > 0) load_held<T, VEC>(x, bi, ti, h0, h, xsb, xsh, xst, chunks, raw);
#pragma unroll
            for (int u = 0; u < NORM_ROPE_GROUP; u++) {
                if (h0 + u >= h) break;
                A v[VEC];
                unpack_held<T, A, VEC>(raw[u], holds, v);
                A ss = 0;
#pragma unroll
                for (int q = 0; q < VEC; q++) ss += v[q] * v[q];
                ss = warp_reduce(ss, SumOp());
                const A r = (A) 1 / jt_sqrt(ss / (A) d + (A) eps);
                if (threadIdx.x == 0) rstd[bt * h + h0 + u] = (typename Stat<T>::type) r;
#pragma unroll
                for (int q = 0; q < VEC; q++) {
                    v[q] = holds ? load_acc<T>(store_acc<T>(v[q] * r * weight_at<W, A>(w, (i64) threadIdx.x * VEC + q, offsetOne))) : (A) 0;
                }
                rotate_held<T, A, VEC>(v, cs, half, chunks);
                if (holds) store_chunk<T, VEC>(out + bi * osb + (h0 + u) * osh + ti * ost + (i64) threadIdx.x * VEC, v);
            }
        }
        __syncwarp();  // cs is the next row's
        if (bt + stride < rows) {
            const i64 next = bt + stride;
            load_held<T, VEC>(x, next / t, next - (next / t) * t, 0, h, xsb, xsh, xst, chunks, raw);
        }
    }
}

template <typename T, typename W, int VEC>
__device__ void rms_norm_rope(const T* x, const W* w, const int* positions, T* out, typename Stat<T>::type* rstd, i64 b, i64 h,
                              i64 t, i64 d, i64 xsb, i64 xsh, i64 xst, i64 osb, i64 osh, i64 ost, double eps, int offsetOne,
                              double base, double scaling) {
    typedef typename Acc<T>::type A;
    extern __shared__ __align__(16) unsigned char rowBuffers[];
    const i64 half = d / 2;
    const i64 chunks = d / VEC;
    A* y = reinterpret_cast<A*>(rowBuffers) + (i64) threadIdx.y * 2 * d;
    A* cs = y + d;
    float* invFreq = reinterpret_cast<float*>(reinterpret_cast<A*>(rowBuffers) + (i64) blockDim.y * 2 * d);
    inverse_frequencies(invFreq, half, d, base, scaling);
    for (i64 bt = (i64) blockIdx.x * blockDim.y + threadIdx.y; bt < b * t; bt += (i64) gridDim.x * blockDim.y) {
        const i64 bi = bt / t;
        const i64 ti = bt - bi * t;
        rope_angles(invFreq, positions[bt], cs, half, 0);
        for (i64 hi = 0; hi < h; hi++) {
            const T* xr = x + bi * xsb + hi * xsh + ti * xst;
            A ss = 0;
            for (i64 k = threadIdx.x; k < chunks; k += 32) {
                A v[VEC];
                load_chunk<T, VEC>(xr + k * VEC, v);
#pragma unroll
                for (int q = 0; q < VEC; q++) ss += v[q] * v[q];
            }
            ss = warp_reduce(ss, SumOp());
            const A r = (A) 1 / jt_sqrt(ss / (A) d + (A) eps);
            if (threadIdx.x == 0) rstd[bt * h + hi] = (typename Stat<T>::type) r;
            __syncwarp();  // the previous head's readers of y are done
            for (i64 k = threadIdx.x; k < chunks; k += 32) {
                A v[VEC];
                load_chunk<T, VEC>(xr + k * VEC, v);
#pragma unroll
                for (int q = 0; q < VEC; q++) y[k * VEC + q] = load_acc<T>(store_acc<T>(v[q] * r * weight_at<W, A>(w, k * VEC + q, offsetOne)));
            }
            __syncwarp();
            rope_row<T>(y, cs, half);
            __syncwarp();
            T* orow = out + bi * osb + hi * osh + ti * ost;
            for (i64 k = threadIdx.x; k < chunks; k += 32) store_chunk<T, VEC>(orow + k * VEC, y + k * VEC);
        }
        __syncwarp();  // cs is the next row's
    }
}

// The backward: gy = the inverse rotation of gradOut, rounded to T (as the unfused rope's gradient is stored), then
// rms_norm_backward's arithmetic on it (gradX in x's layout, strided as gradX's strides say). partial (null: no
// weight gradient) gets one line a block: the block's warps' lines [D] (rms_norm_backward's layout, column k * VEC + q
// at q * (D / VEC) + k) added in order.
// The backward of the rows rms_norm_rope_held takes, the same way: each head group's gradOut and x chunks loaded
// together (the next row's first group during this row's angles), then the shared-memory path's arithmetic.
template <typename T, typename W, int VEC>
__device__ void rms_norm_rope_backward_held(const T* x, const W* w, const typename Stat<T>::type* rstd, const int* positions,
                                            const T* gradOut, T* gradX, typename Acc<T>::type* partial, i64 b, i64 h, i64 t, i64 d,
                                            i64 xsb, i64 xsh, i64 xst, i64 gsb, i64 gsh, i64 gst, i64 dsb, i64 dsh, i64 dst,
                                            int offsetOne, double base, double scaling) {
    typedef typename Acc<T>::type A;
    typedef typename Raw<(int) sizeof(T) * VEC>::type R;
    extern __shared__ __align__(16) unsigned char rowBuffers[];
    const i64 half = d / 2;
    const int chunks = (int) (d / VEC);
    const int lane = threadIdx.x;
    const bool holds = lane < chunks;
    A* cs = reinterpret_cast<A*>(rowBuffers) + (i64) threadIdx.y * 3 * d + d;  // the shared-memory path's slots
    A* mine = cs + d;
    float* invFreq = reinterpret_cast<float*>(reinterpret_cast<A*>(rowBuffers) + (i64) blockDim.y * 3 * d);
    for (i64 i = lane; i < d; i += 32) mine[i] = (A) 0;
    const i64 rows = b * t;
    const i64 stride = (i64) gridDim.x * blockDim.y;
    i64 bt = (i64) blockIdx.x * blockDim.y + threadIdx.y;
    R graw[NORM_ROPE_GROUP];
    R xraw[NORM_ROPE_GROUP];
    if (bt < rows) {
        load_held<T, VEC>(gradOut, bt / t, bt - (bt / t) * t, 0, h, gsb, gsh, gst, chunks, graw);
        load_held<T, VEC>(x, bt / t, bt - (bt / t) * t, 0, h, xsb, xsh, xst, chunks, xraw);
    }
    inverse_frequencies(invFreq, half, d, base, scaling);
    for (; bt < rows; bt += stride) {
        const i64 bi = bt / t;
        const i64 ti = bt - bi * t;
        rope_angles(invFreq, positions[bt], cs, half, 1);
        __syncwarp();
        for (i64 h0 = 0; h0 < h; h0 += NORM_ROPE_GROUP) {
            if (h0 > 0) {
                load_held<T, VEC>(gradOut, bi, ti, h0, h, gsb, gsh, gst, chunks, graw);
                load_held<T, VEC>(x, bi, ti, h0, h, xsb, xsh, xst, chunks, xraw);
            }
#pragma unroll
            for (int u = 0; u < NORM_ROPE_GROUP; u++) {
                if (h0 + u >= h) break;
                A gy[VEC];
                A xv[VEC];
                unpack_held<T, A, VEC>(graw[u], holds, gy);
                unpack_held<T, A, VEC>(xraw[u], holds, xv);
                rotate_held<T, A, VEC>(gy, cs, half, chunks);
                A dot = 0;
                if (holds) {
#pragma unroll
                    for (int q = 0; q < VEC; q++) dot += gy[q] * weight_at<W, A>(w, (i64) lane * VEC + q, offsetOne) * xv[q];
                }
                dot = warp_reduce(dot, SumOp());
                const A r = (A) rstd[bt * h + h0 + u];
                const A c = r * r * r * dot / (A) d;
                if (holds) {
                    A o[VEC];
#pragma unroll
                    for (int q = 0; q < VEC; q++) {
                        o[q] = r * (gy[q] * weight_at<W, A>(w, (i64) lane * VEC + q, offsetOne)) - xv[q] * c;
                        if (partial != nullptr) mine[q * chunks + lane] += gy[q] * xv[q] * r;
                    }
                    store_chunk<T, VEC>(gradX + bi * dsb + (h0 + u) * dsh + ti * dst + (i64) lane * VEC, o);
                }
            }
        }
        __syncwarp();  // cs is the next row's
        if (bt + stride < rows) {
            const i64 next = bt + stride;
            load_held<T, VEC>(gradOut, next / t, next - (next / t) * t, 0, h, gsb, gsh, gst, chunks, graw);
            load_held<T, VEC>(x, next / t, next - (next / t) * t, 0, h, xsb, xsh, xst, chunks, xraw);
        }
    }
    if (partial != nullptr) block_lines_to_scratch(reinterpret_cast<const A*>(rowBuffers) + 2 * d, 3 * d, d, partial);
}

template <typename T, typename W, int VEC>
__device__ void rms_norm_rope_backward(const T* x, const W* w, const typename Stat<T>::type* rstd, const int* positions,
                                       const T* gradOut, T* gradX, typename Acc<T>::type* partial, i64 b, i64 h, i64 t, i64 d,
                                       i64 xsb, i64 xsh, i64 xst, i64 gsb, i64 gsh, i64 gst, i64 dsb, i64 dsh, i64 dst,
                                       int offsetOne, double base, double scaling) {
    typedef typename Acc<T>::type A;
    extern __shared__ __align__(16) unsigned char rowBuffers[];
    const i64 half = d / 2;
    const i64 chunks = d / VEC;
    A* gy = reinterpret_cast<A*>(rowBuffers) + (i64) threadIdx.y * 3 * d;
    A* cs = gy + d;
    A* mine = gy + 2 * d;
    float* invFreq = reinterpret_cast<float*>(reinterpret_cast<A*>(rowBuffers) + (i64) blockDim.y * 3 * d);
    for (i64 i = threadIdx.x; i < d; i += 32) mine[i] = (A) 0;
    inverse_frequencies(invFreq, half, d, base, scaling);
    for (i64 bt = (i64) blockIdx.x * blockDim.y + threadIdx.y; bt < b * t; bt += (i64) gridDim.x * blockDim.y) {
        const i64 bi = bt / t;
        const i64 ti = bt - bi * t;
        rope_angles(invFreq, positions[bt], cs, half, 1);
        for (i64 hi = 0; hi < h; hi++) {
            __syncwarp();  // the previous head's readers of gy are done (and cs is written)
            const T* grow = gradOut + bi * gsb + hi * gsh + ti * gst;
            for (i64 k = threadIdx.x; k < chunks; k += 32) {
                A v[VEC];
                load_chunk<T, VEC>(grow + k * VEC, v);
#pragma unroll
                for (int q = 0; q < VEC; q++) gy[k * VEC + q] = v[q];
            }
            __syncwarp();
            rope_row<T>(gy, cs, half);
            __syncwarp();
            const T* xr = x + bi * xsb + hi * xsh + ti * xst;
            A dot = 0;
            for (i64 k = threadIdx.x; k < chunks; k += 32) {
                A xv[VEC];
                load_chunk<T, VEC>(xr + k * VEC, xv);
#pragma unroll
                for (int q = 0; q < VEC; q++) dot += gy[k * VEC + q] * weight_at<W, A>(w, k * VEC + q, offsetOne) * xv[q];
            }
            dot = warp_reduce(dot, SumOp());
            const A r = (A) rstd[bt * h + hi];
            const A c = r * r * r * dot / (A) d;
            T* dxr = gradX + bi * dsb + hi * dsh + ti * dst;
            for (i64 k = threadIdx.x; k < chunks; k += 32) {
                A xv[VEC];
                A o[VEC];
                load_chunk<T, VEC>(xr + k * VEC, xv);
#pragma unroll
                for (int q = 0; q < VEC; q++) {
                    const A gv = gy[k * VEC + q];
                    o[q] = r * (gv * weight_at<W, A>(w, k * VEC + q, offsetOne)) - xv[q] * c;
                    if (partial != nullptr) mine[q * chunks + k] += gv * xv[q] * r;
                }
                store_chunk<T, VEC>(dxr + k * VEC, o);
            }
        }
    }
    if (partial != nullptr) block_lines_to_scratch(reinterpret_cast<const A*>(rowBuffers) + 2 * d, 3 * d, d, partial);
}

#define JT_NORM_ROPE_V(xs, T, ws, W, sfx, V) \
    extern "C" __global__ void __launch_bounds__(NORM_ROPE_THREADS, sizeof(T) == 2 ? NORM_ROPE_BLOCKS : 1) rms_norm_rope_##xs##_##ws##sfx(const T* x, const W* w, const int* positions, T* out, Stat<T>::type* rstd, \
            i64 b, i64 h, i64 t, i64 d, i64 xsb, i64 xsh, i64 xst, i64 osb, i64 osh, i64 ost, double eps, int offsetOne, double base, \
            double scaling, int held) { \
        if (held) rms_norm_rope_held<T, W, V>(x, w, positions, out, rstd, b, h, t, d, xsb, xsh, xst, osb, osh, ost, eps, offsetOne, base, scaling); \
        else rms_norm_rope<T, W, V>(x, w, positions, out, rstd, b, h, t, d, xsb, xsh, xst, osb, osh, ost, eps, offsetOne, base, scaling); } \
    extern "C" __global__ void rms_norm_rope_backward_##xs##_##ws##sfx(const T* x, const W* w, const Stat<T>::type* rstd, \
            const int* positions, const T* gradOut, T* gradX, Acc<T>::type* partial, i64 b, i64 h, i64 t, i64 d, i64 xsb, i64 xsh, \
            i64 xst, i64 gsb, i64 gsh, i64 gst, i64 dsb, i64 dsh, i64 dst, int offsetOne, double base, double scaling, int held) { \
        if (held) rms_norm_rope_backward_held<T, W, V>(x, w, rstd, positions, gradOut, gradX, partial, b, h, t, d, xsb, xsh, xst, gsb, \
                                                       gsh, gst, dsb, dsh, dst, offsetOne, base, scaling); \
        else rms_norm_rope_backward<T, W, V>(x, w, rstd, positions, gradOut, gradX, partial, b, h, t, d, xsb, xsh, xst, gsb, gsh, gst, \
                                             dsb, dsh, dst, offsetOne, base, scaling); }
#define JT_NORM_ROPE_W(xs, T, ws, W) JT_NORM_ROPE_V(xs, T, ws, W, , 1) JT_NORM_ROPE_V(xs, T, ws, W, _vec, Vec<T>::N)
#define JT_NORM_ROPE(xs, T) \
    JT_NORM_ROPE_W(xs, T, f64, double) JT_NORM_ROPE_W(xs, T, f32, float) JT_NORM_ROPE_W(xs, T, bf16, __nv_bfloat16) \
    JT_NORM_ROPE_W(xs, T, f16, __half)
JT_FLOAT_TYPES(JT_NORM_ROPE)

extern "C" __global__ void rms_norm_weight_reduce_f32(const float* partial, float* gradWeight, i64 lines, i64 d, i64 vec) {
    rms_norm_weight_reduce<float>(partial, gradWeight, lines, d, vec);
}
extern "C" __global__ void rms_norm_weight_reduce_f64(const double* partial, double* gradWeight, i64 lines, i64 d, i64 vec) {
    rms_norm_weight_reduce<double>(partial, gradWeight, lines, d, vec);
}
