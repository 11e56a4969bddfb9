// Shared by every jtune kernel: element types, conversions with the engine's semantics (floats round to
// nearest even, floats to integers truncate toward zero and saturate, NaN -> 0), and strided indexing.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

typedef long long i64;
typedef unsigned char u8;

// Constants that the launch classes declare (each kernel source's KernelSource in dev.jtune.engine.cuda) reach every
// source as -D defines, from NVRTC at run time and from the build's nvcc check: a missing one is an error here, never
// a silent default. These two: the most dimensions of a Layout (Shape.MAX_RANK) and the widest access in bytes.
#if !defined(JT_MAX_RANK) || !defined(JT_VECTOR_BYTES)
#error "JT_MAX_RANK and JT_VECTOR_BYTES come from KernelSource.java: compile with the kernel source's defines"
#endif

// A strided view: rank, sizes and strides in elements (coalesced by the host to few dimensions).
struct Layout {
    int rank;
    i64 shape[JT_MAX_RANK];
    i64 stride[JT_MAX_RANK];
};

// Offset of flat (row-major) element i of a tensor with `layout`.
__device__ __forceinline__ i64 strided_offset(const Layout& layout, i64 i) {
    if (layout.rank == 1) return i * layout.stride[0];  // the common, coalesced case: no division
    i64 off = 0;
    for (int d = layout.rank - 1; d >= 0; d--) {
        i64 s = layout.shape[d];
        i64 q = i / s;
        off += (i - q * s) * layout.stride[d];
        i = q;
    }
    return off;
}

template <typename T> struct Num;
template <> struct Num<double> {
    static constexpr bool integral = false;
    __device__ static double to_d(double x) { return x; }
    __device__ static double from_d(double x) { return x; }
};
template <> struct Num<float> {
    static constexpr bool integral = false;
    __device__ static double to_d(float x) { return (double) x; }
    __device__ static float from_d(double x) { return (float) x; }
};
template <> struct Num<__nv_bfloat16> {
    static constexpr bool integral = false;
    __device__ static double to_d(__nv_bfloat16 x) { return (double) __bfloat162float(x); }
    __device__ static __nv_bfloat16 from_d(double x) { return __double2bfloat16(x); }
};
template <> struct Num<__half> {
    static constexpr bool integral = false;
    __device__ static double to_d(__half x) { return (double) __half2float(x); }
    __device__ static __half from_d(double x) { return __double2half(x); }
};
template <> struct Num<i64> {
    static constexpr bool integral = true;
    __device__ static double to_d(i64 x) { return (double) x; }
    __device__ static i64 from_d(double x) { return __double2ll_rz(x); }  // saturates, NaN -> 0
};
template <> struct Num<int> {
    static constexpr bool integral = true;
    __device__ static double to_d(int x) { return (double) x; }
    __device__ static int from_d(double x) { return __double2int_rz(x); }  // saturates, NaN -> 0
};
template <> struct Num<u8> {
    static constexpr bool integral = true;
    __device__ static double to_d(u8 x) { return (double) x; }
    __device__ static u8 from_d(double x) {
        if (!(x > 0.0)) return 0;  // also NaN
        return x >= 255.0 ? 255 : (u8) x;
    }
};

// Integer to integer conversions go through 64-bit integers (exact), saturating to the target's range.
template <typename D> __device__ __forceinline__ D from_i64(i64 v);
template <> __device__ __forceinline__ i64 from_i64<i64>(i64 v) { return v; }
template <> __device__ __forceinline__ int from_i64<int>(i64 v) { return v < -2147483648LL ? (int) -2147483648LL : v > 2147483647LL ? 2147483647 : (int) v; }
template <> __device__ __forceinline__ u8 from_i64<u8>(i64 v) { return v < 0 ? 0 : v > 255 ? 255 : (u8) v; }

template <typename S, typename D, bool BothIntegral> struct Converter {
    __device__ static D convert(S x) { return Num<D>::from_d(Num<S>::to_d(x)); }
};
template <typename S, typename D> struct Converter<S, D, true> {
    __device__ static D convert(S x) { return from_i64<D>((i64) x); }
};
template <typename S, typename D> __device__ __forceinline__ D convert(S x) {
    return Converter<S, D, Num<S>::integral && Num<D>::integral>::convert(x);
}

// Floating arithmetic runs in float for 16/32-bit types and in double for double, as on the cpu reference.
template <typename T> struct Acc { typedef float type; };
template <> struct Acc<double> { typedef double type; };

template <typename T> __device__ __forceinline__ typename Acc<T>::type load_acc(T x) { return (typename Acc<T>::type) Num<T>::to_d(x); }
template <> __device__ __forceinline__ float load_acc<float>(float x) { return x; }
template <> __device__ __forceinline__ float load_acc<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> __device__ __forceinline__ float load_acc<__half>(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T store_acc(typename Acc<T>::type x) { return Num<T>::from_d((double) x); }
template <> __device__ __forceinline__ float store_acc<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 store_acc<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half store_acc<__half>(float x) { return __float2half_rn(x); }

// Grid-stride loop over n elements.
#define JT_FOR(i, n) for (i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64) gridDim.x * blockDim.x)

// One extern "C" entry per element type, named base_suffix.
#define JT_FLOAT_TYPES(X) X(f64, double) X(f32, float) X(bf16, __nv_bfloat16) X(f16, __half)
#define JT_ALL_TYPES(X) X(f64, double) X(f32, float) X(bf16, __nv_bfloat16) X(f16, __half) X(i64, i64) X(i32, int) X(u8, u8)
