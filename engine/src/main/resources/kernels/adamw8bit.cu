// bitsandbytes' blockwise 8-bit AdamW (kOptimizerStatic8bit2StateBlockwise's algorithm) over one flat group, see
// fused/AdamW8bitKernel.java for the contract and its cpu reference. A thread block works on one quantization block
// of ADAM8_BLOCK elements at a time (a grid-stride loop over the `blocks`), one element per thread, in fp32 as
// bitsandbytes computes:
//   dequantize m = signed[qm] * absmaxM[b], v = unsigned[qv] * absmaxV[b]; v = beta2 v + w2 g^2, m = beta1 m + w1 g
//   (an element with a NaN/inf gradient gets m = v = 0 and no update); the block's new absmax of |m| and |v|;
//   p += stepSize * m / (sqrt(v) + epsTerm), then p *= decay when decayOn; requantize. The scalars come from the host,
//   each computed in double and rounded once (w1 = 1 - beta1, w2 = 1 - beta2: bitsandbytes' 1.0f - 0.999f is 1.3e-5
//   off 0.001, which the double reference would see).
// The parameter of a block comes from `table` (address, flat offset, numel per parameter, ascending offsets): a
// binary search per block; a block in a gap between parameters does nothing, and the elements of a short last block
// past the parameter's end are bitsandbytes' padding (gradient 0, codes ADAM8_PAD_M / ADAM8_PAD_V), read, never
// written. With a master copy (F32, flat) the step updates it and rounds it into the parameter; without one the
// parameter is F32 and updated in place.
// codes: the signed map's ADAM8_CODES values, then the unsigned map's, uploaded once by Adam8bitKernels.java from
// quant/DynamicMap.java.
#include "rows.cuh"

// From Adam8bitKernels.java: the block (FlatLayout.ALIGNMENT, bitsandbytes' 256), the entries of a map, and the
// padding codes (AdamW8bitKernel.PAD_CODE_M / PAD_CODE_V).
#if !defined(ADAM8_BLOCK) || !defined(ADAM8_CODES) || !defined(ADAM8_PAD_M) || !defined(ADAM8_PAD_V)
#error "ADAM8_BLOCK, ADAM8_CODES, ADAM8_PAD_M and ADAM8_PAD_V come from Adam8bitKernels.java's KernelSource"
#endif
static_assert(ADAM8_CODES == 256, "a code is one byte");
static_assert(ADAM8_BLOCK % 32 == 0 && ADAM8_BLOCK <= 1024, "one thread per element: whole warps, one block");

// The code of x in `map` as bitsandbytes' quantize_2D picks it: binary search from the middle in steps of 64..1
// (up while x > map[pivot]), then the final pivot or the neighbour last passed on x's side, by their fp32 midpoint;
// x on the midpoint keeps the pivot; NaN ends at code 0. `lower` starts at -1 (signed) or 0, as published (it
// never decides: see DynamicMap.java).
__device__ __forceinline__ int quantize_code(const float* map, float lowerStart, float x) {
    int pivot = ADAM8_CODES / 2 - 1;
    int upperPivot = ADAM8_CODES - 1;
    int lowerPivot = 0;
    float lower = lowerStart;
    float upper = 1.0f;
    float val = map[pivot];
#pragma unroll
    for (int step = ADAM8_CODES / 4; step > 0; step >>= 1) {
        if (x > val) {
            lowerPivot = pivot;
            lower = val;
            pivot += step;
        } else {
            upperPivot = pivot;
            upper = val;
            pivot -= step;
        }
        val = map[pivot];
    }
    if (x > val) {
        return x > __fmul_rn(__fadd_rn(upper, val), 0.5f) ? upperPivot : pivot;
    }
    return x < __fmul_rn(__fadd_rn(lower, val), 0.5f) ? lowerPivot : pivot;
}

// The last table row whose offset is <= first, or -1.
__device__ __forceinline__ int entry_of(const i64* table, int entries, i64 first) {
    int lo = 0;
    int hi = entries - 1;
    int found = -1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        if (table[3 * mid + 1] <= first) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}

template <typename P, typename G>
__device__ void adamw8bit(const i64* __restrict__ table, int entries, float* __restrict__ master, const G* __restrict__ grad,
                          u8* __restrict__ qm, u8* __restrict__ qv, float* __restrict__ absmaxM, float* __restrict__ absmaxV,
                          const float* __restrict__ codes, const void* gradScale, int gradScaleF64, float beta1, float w1,
                          float beta2, float w2, float stepSize, float epsTerm, float decay, int decayOn, i64 blocks) {
    __shared__ float signedMap[ADAM8_CODES];
    __shared__ float unsignedMap[ADAM8_CODES];
    __shared__ float scratch[32];
    for (int k = threadIdx.x; k < ADAM8_CODES; k += blockDim.x) {
        signedMap[k] = codes[k];
        unsignedMap[k] = codes[ADAM8_CODES + k];
    }
    __syncthreads();

    // a grid-stride loop over the quantization blocks: the maps are loaded once per thread block
    for (i64 b = blockIdx.x; b < blocks; b += gridDim.x) {
        const i64 first = b * ADAM8_BLOCK;
        const int e = entry_of(table, entries, first);
        if (e < 0) continue;  // uniform across the block
        const i64 offset = table[3 * e + 1];
        const i64 numel = table[3 * e + 2];
        if (first >= offset + numel) continue;  // a gap between parameters
        P* param = reinterpret_cast<P*>(table[3 * e]);

        const i64 i = first + threadIdx.x;
        const i64 local = i - offset;
        const bool valid = local < numel;
        const float graw = valid ? load_acc<G>(grad[i]) : 0.0f;
        const bool finite = isfinite(graw);
        float m = 0.0f;
        float v = 0.0f;
        if (finite) {
            const float scale = gradScale != nullptr ? (float) read_scalar(gradScale, gradScaleF64) : 1.0f;
            const float g = graw * scale;
            const int cm = valid ? qm[i] : ADAM8_PAD_M;
            const int cv = valid ? qv[i] : ADAM8_PAD_V;
            v = unsignedMap[cv] * absmaxV[b];
            v = v * beta2 + w2 * g * g;
            m = signedMap[cm] * absmaxM[b];
            m = m * beta1 + w1 * g;
        }
        // every thread has read absmaxM[b] and absmaxV[b] before the reduction's barriers; thread 0 rewrites them after
        const float newM = row_max(fmaxf(-3.402823466e+38f, fabsf(m)), scratch);
        const float newV = row_max(fmaxf(-3.402823466e+38f, fabsf(v)), scratch);
        if (threadIdx.x == 0) {
            absmaxM[b] = newM;
            absmaxV[b] = newV;
        }
        if (valid) {
            if (finite) {
                float p = master != nullptr ? master[i] : load_acc<P>(param[local]);
                p = p + stepSize * (m / (sqrtf(v) + epsTerm));
                if (decayOn) p = p * decay;
                if (master != nullptr) master[i] = p;
                param[local] = store_acc<P>(p);
            }
            int cm = quantize_code(signedMap, -1.0f, m / newM);
            // keep the moment's sign: a code whose value has the other sign bit moves one step toward m (the byte
            // wraps, as bitsandbytes' unsigned char does, only in an all-zero block where every code decodes to 0)
            if ((signbit(signedMap[cm]) != 0) != (signbit(m) != 0)) cm += m > 0.0f ? 1 : -1;
            qm[i] = (u8) (cm & 0xFF);
            qv[i] = (u8) quantize_code(unsignedMap, 0.0f, v / newV);
        }
    }
}

#define JT_ADAMW8BIT(ps, P, gs, G) \
    extern "C" __global__ void __launch_bounds__(ADAM8_BLOCK) adamw8bit_##ps##_##gs( \
            const i64* table, int entries, float* master, const G* grad, u8* qm, u8* qv, float* absmaxM, float* absmaxV, \
            const float* codes, const void* gradScale, int gradScaleF64, float beta1, float w1, float beta2, float w2, \
            float stepSize, float epsTerm, float decay, int decayOn, i64 blocks) { \
        adamw8bit<P, G>(table, entries, master, grad, qm, qv, absmaxM, absmaxV, codes, gradScale, gradScaleF64, beta1, w1, beta2, \
                        w2, stepSize, epsTerm, decay, decayOn, blocks); }
#define JT_ADAMW8BIT_P(ps, P) JT_ADAMW8BIT(ps, P, f32, float) JT_ADAMW8BIT(ps, P, bf16, __nv_bfloat16) JT_ADAMW8BIT(ps, P, f16, __half)
JT_ADAMW8BIT_P(f32, float)
JT_ADAMW8BIT_P(bf16, __nv_bfloat16)
JT_ADAMW8BIT_P(f16, __half)
