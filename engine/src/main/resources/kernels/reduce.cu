// Reductions along one axis of a contiguous tensor viewed as [outer, n, inner]. Accumulation in float (double
// for double inputs); MAX propagates NaN like the cpu reference.
#include "common.cuh"

// ReduceOp's ordinals, from ReduceKernels.java.
#if !defined(OP_SUM) || !defined(OP_MEAN) || !defined(OP_MAX)
#error "OP_SUM, OP_MEAN and OP_MAX come from ReduceKernels.java's KernelSource"
#endif

template <typename A>
__device__ __forceinline__ A combine(int op, A x, A y) {
    if (op == OP_MAX) {
        if (x != x) return x;
        return (y != y || y > x) ? y : x;
    }
    return x + y;
}

template <typename A> __device__ __forceinline__ A negative_infinity();
template <> __device__ __forceinline__ float negative_infinity<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double negative_infinity<double>() { return __longlong_as_double(0xfff0000000000000LL); }

template <typename A>
__device__ __forceinline__ A identity(int op) {
    return op == OP_MAX ? negative_infinity<A>() : (A) 0;
}

// inner == 1: one block of 256 threads per output row, a strided pass then a tree over warps.
template <typename T>
__device__ void reduce_rows(const T* in, T* out, i64 outer, i64 n, int op) {
    typedef typename Acc<T>::type A;
    __shared__ A partial[32];
    for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
        const T* p = in + row * n;
        A acc = identity<A>(op);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            acc = combine<A>(op, acc, load_acc<T>(p[j]));
        }
        for (int o = 16; o > 0; o >>= 1) {
            acc = combine<A>(op, acc, __shfl_down_sync(0xffffffffu, acc, o));
        }
        int warp = threadIdx.x >> 5;
        int lane = threadIdx.x & 31;
        if (lane == 0) partial[warp] = acc;
        __syncthreads();
        if (warp == 0) {
            int warps = (blockDim.x + 31) >> 5;
            acc = lane < warps ? partial[lane] : identity<A>(op);
            for (int o = 16; o > 0; o >>= 1) {
                acc = combine<A>(op, acc, __shfl_down_sync(0xffffffffu, acc, o));
            }
            if (lane == 0) {
                out[row] = store_acc<T>(op == OP_MEAN ? acc / (A) n : acc);
            }
        }
        __syncthreads();
    }
}

// inner > 1: one thread per output element, walking n; neighbouring threads read neighbouring addresses.
template <typename T>
__device__ void reduce_columns(const T* in, T* out, i64 outer, i64 n, i64 inner, int op) {
    typedef typename Acc<T>::type A;
    JT_FOR(idx, outer * inner) {
        i64 o = idx / inner;
        i64 k = idx - o * inner;
        const T* p = in + o * n * inner + k;
        A acc = identity<A>(op);
        for (i64 j = 0; j < n; j++) {
            acc = combine<A>(op, acc, load_acc<T>(p[j * inner]));
        }
        out[idx] = store_acc<T>(op == OP_MEAN ? acc / (A) n : acc);
    }
}

#define JT_REDUCE(sfx, T) \
    extern "C" __global__ void reduce_rows_##sfx(const T* in, T* out, i64 outer, i64 n, int op) { reduce_rows<T>(in, out, outer, n, op); } \
    extern "C" __global__ void reduce_columns_##sfx(const T* in, T* out, i64 outer, i64 n, i64 inner, int op) { reduce_columns<T>(in, out, outer, n, inner, op); }
JT_FLOAT_TYPES(JT_REDUCE)
