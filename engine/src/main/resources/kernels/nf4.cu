// NF4 dequantization (bitsandbytes' blockwise 4-bit NormalFloat, 64 elements per block), see quant/Nf4.java.
// codes: two 4-bit codes per byte, element 2k in the high nibble. The scale of block b is absmax[b], or, with
// double-quantized statistics (absmax == nullptr), fp32(fp32(dyn[absmaxCodes[b]] * absmax2[b / 256]) + offset).
// out[i] = round_T(fp32(nf4[code_i] * scale)).
//
// Bit-exactness with the cpu backend: every product and sum is an explicitly rounded fp32 operation (__fmul_rn,
// __fadd_rn: never contracted into an fma), and the result is rounded once to T (to nearest even).
//
// Memory: this runs before every NF4 matmul, forward and backward, so it is written for bandwidth. In the
// vectorised form each thread reads 16 code bytes with one 16-byte load (32 elements, half a block, one scale) and
// writes them with 16-byte stores; the 16 code values sit in shared memory (16 words in 16 banks: conflict-free),
// the dynamic map stays in global memory behind the read-only cache (one lookup per 32 elements).
// tables: [0, NF4_CODES) the NF4 code values, then the signed dynamic map, uploaded once by Nf4Kernels.java.
#include "common.cuh"

// From Nf4Kernels.java: the format's block sizes (Nf4Tensor.BLOCK, BLOCK2), the count of code values (16: a nibble)
// and the elements of one vectorised chunk (NF4_CHUNK: 32, the codes of one 16-byte load).
#if !defined(NF4_BLOCK) || !defined(NF4_BLOCK2) || !defined(NF4_CODES) || !defined(NF4_CHUNK)
#error "NF4_BLOCK, NF4_BLOCK2, NF4_CODES and NF4_CHUNK come from Nf4Kernels.java's KernelSource"
#endif
static_assert(NF4_CODES == 16, "a code is one nibble");
static_assert(NF4_CHUNK == 2 * (int) sizeof(uint4), "a chunk is the two nibbles of each byte of one uint4 load");
static_assert(NF4_BLOCK % NF4_CHUNK == 0, "a chunk lies within one block, so it has one scale");

__device__ __forceinline__ float nf4_scale(i64 block, const float* __restrict__ absmax, const u8* __restrict__ absmaxCodes,
                                           const float* __restrict__ absmax2, float offset, const float* __restrict__ dyn) {
    if (absmax != nullptr) return __ldg(absmax + block);
    float d = __ldg(dyn + __ldg(absmaxCodes + block));
    return __fadd_rn(__fmul_rn(d, __ldg(absmax2 + block / NF4_BLOCK2)), offset);
}

// The 8 outputs of one 32-bit word of codes (its byte 0 first, each byte's high nibble first), stored at p (16-byte
// aligned for 16-bit T, 32-byte aligned for float) as 16-byte stores.
template <typename T> struct Nf4Store;

template <> struct Nf4Store<float> {
    __device__ __forceinline__ static void store8(float* p, unsigned w, const float* lut, float s) {
        float4 a, b;
        a.x = __fmul_rn(lut[(w >> 4) & 15], s);
        a.y = __fmul_rn(lut[w & 15], s);
        a.z = __fmul_rn(lut[(w >> 12) & 15], s);
        a.w = __fmul_rn(lut[(w >> 8) & 15], s);
        b.x = __fmul_rn(lut[(w >> 20) & 15], s);
        b.y = __fmul_rn(lut[(w >> 16) & 15], s);
        b.z = __fmul_rn(lut[(w >> 28) & 15], s);
        b.w = __fmul_rn(lut[(w >> 24) & 15], s);
        reinterpret_cast<float4*>(p)[0] = a;
        reinterpret_cast<float4*>(p)[1] = b;
    }
};

template <> struct Nf4Store<__nv_bfloat16> {
    __device__ __forceinline__ static void store8(__nv_bfloat16* p, unsigned w, const float* lut, float s) {
        uint4 r;
        unsigned* rr = reinterpret_cast<unsigned*>(&r);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            unsigned byte = (w >> (8 * q)) & 0xFF;
            __nv_bfloat162 h = __floats2bfloat162_rn(__fmul_rn(lut[byte >> 4], s), __fmul_rn(lut[byte & 15], s));
            rr[q] = *reinterpret_cast<unsigned*>(&h);
        }
        *reinterpret_cast<uint4*>(p) = r;
    }
};

template <> struct Nf4Store<__half> {
    __device__ __forceinline__ static void store8(__half* p, unsigned w, const float* lut, float s) {
        uint4 r;
        unsigned* rr = reinterpret_cast<unsigned*>(&r);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            unsigned byte = (w >> (8 * q)) & 0xFF;
            __half2 h = __floats2half2_rn(__fmul_rn(lut[byte >> 4], s), __fmul_rn(lut[byte & 15], s));
            rr[q] = *reinterpret_cast<unsigned*>(&h);
        }
        *reinterpret_cast<uint4*>(p) = r;
    }
};

// VEC: codes and out are 16-byte aligned (the host checks); chunks of NF4_CHUNK elements are vectorised and the
// last n % NF4_CHUNK elements done one per thread. Without VEC every element is done one per thread.
template <typename T, bool VEC>
__device__ void dequantize_nf4(const u8* __restrict__ codes, const float* __restrict__ absmax,
                               const u8* __restrict__ absmaxCodes, const float* __restrict__ absmax2, float offset,
                               const float* __restrict__ tables, T* __restrict__ out, i64 n) {
    __shared__ float lut[NF4_CODES];
    if (threadIdx.x < NF4_CODES) lut[threadIdx.x] = tables[threadIdx.x];
    __syncthreads();
    const float* dyn = tables + NF4_CODES;
    i64 done = 0;
    if (VEC) {
        const i64 chunks = n / NF4_CHUNK;
        const uint4* c4 = reinterpret_cast<const uint4*>(codes);
        JT_FOR(c, chunks) {
            uint4 w = __ldg(c4 + c);
            float s = nf4_scale(c / (NF4_BLOCK / NF4_CHUNK), absmax, absmaxCodes, absmax2, offset, dyn);
            T* o = out + c * NF4_CHUNK;
            Nf4Store<T>::store8(o, w.x, lut, s);
            Nf4Store<T>::store8(o + 8, w.y, lut, s);
            Nf4Store<T>::store8(o + 16, w.z, lut, s);
            Nf4Store<T>::store8(o + 24, w.w, lut, s);
        }
        done = chunks * NF4_CHUNK;
    }
    JT_FOR(k, n - done) {
        i64 i = done + k;
        unsigned byte = __ldg(codes + (i >> 1));
        unsigned code = (i & 1) ? (byte & 15) : (byte >> 4);
        float s = nf4_scale(i / NF4_BLOCK, absmax, absmaxCodes, absmax2, offset, dyn);
        out[i] = store_acc<T>(__fmul_rn(lut[code], s));
    }
}

#define JT_NF4(sfx, T) \
    extern "C" __global__ void dequantize_nf4_##sfx(const u8* codes, const float* absmax, const u8* absmaxCodes, \
            const float* absmax2, float offset, const float* tables, T* out, i64 n) { \
        dequantize_nf4<T, false>(codes, absmax, absmaxCodes, absmax2, offset, tables, out, n); } \
    extern "C" __global__ void dequantize_nf4_##sfx##_vec(const u8* codes, const float* absmax, const u8* absmaxCodes, \
            const float* absmax2, float offset, const float* tables, T* out, i64 n) { \
        dequantize_nf4<T, true>(codes, absmax, absmaxCodes, absmax2, offset, tables, out, n); }
JT_NF4(f32, float)
JT_NF4(bf16, __nv_bfloat16)
JT_NF4(f16, __half)
