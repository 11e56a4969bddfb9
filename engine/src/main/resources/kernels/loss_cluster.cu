// Cross-entropy's loss, lse and gradient in one pass over logits [N, V] (Hopper's thread-block clusters, sm_90+):
// the logits are read once and their gradient written once, where loss.cu's forward and backward read them twice.
//
// A row is split over the CE_CLUSTER blocks of one cluster; each thread holds its CE_HELD 16-byte chunks of the row in
// registers (128 bytes: Gemma's 262,144 bf16 logits over 8 blocks of 512 threads), so after the row's max and sum of
// exp are known nothing is read again. Each block reduces its part (rows.cuh's fixed-order reductions), then every
// block reads the cluster's partials from the others' shared memory in rank order: all blocks get the same bits.
// The values are those of loss.cu's pair (same formulas; the sums in another order, so the last bits may differ):
//   lse[i] = max + log(sum exp(x - max)) (an infinite max is the lse), loss[i] = lse[i] - x[labels[i]] (0 when
//   ignored, NaN for another label outside [0, V)), grad[i, c] = scale[0] * (exp(x - lse[i]) - (c == labels[i])), 0 on
//   ignored rows. grad may be logits (each thread reads its chunks before writing them).
// The host (LossKernels.java) launches N clusters (one per row) of the threads it picks, on rows aligned for 16-byte
// accesses whose length fits CE_CLUSTER x threads x CE_HELD chunks.
#include "rows.cuh"

#ifndef CE_CLUSTER
#error "CE_CLUSTER comes from LossKernels.java's KernelSource"
#endif
#ifndef CE_HELD
#error "CE_HELD comes from LossKernels.java's KernelSource"
#endif

__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}

__device__ __forceinline__ unsigned cluster_index() {
    unsigned r;
    asm volatile("mov.u32 %0, %%clusterid.x;\n" : "=r"(r));
    return r;
}

// Every thread of every block of the cluster; release/acquire: shared-memory writes before it are seen after it.
__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }

// The value at `local` (a __shared__ variable) in the shared memory of the cluster's block `rank`.
__device__ __forceinline__ float cluster_load(const float* local, unsigned rank) {
    unsigned a = (unsigned) __cvta_generic_to_shared(local), remote;
    float v;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(a), "r"(rank));
    asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(remote) : "memory");
    return v;
}
__device__ __forceinline__ double cluster_load(const double* local, unsigned rank) {
    unsigned a = (unsigned) __cvta_generic_to_shared(local), remote;
    double v;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(a), "r"(rank));
    asm volatile("ld.shared::cluster.f64 %0, [%1];\n" : "=d"(v) : "r"(remote) : "memory");
    return v;
}

// Combines one value per block over the cluster: each block's thread 0 has put its value in *slot; after the
// barrier, lanes 0..CE_CLUSTER-1 of every warp read the blocks' values and a butterfly combines them (every lane,
// every warp and every block the same bits, as row_reduce's).
template <typename A, typename Op>
__device__ __forceinline__ A cluster_reduce(const A* slot, A identity, Op op) {
    const unsigned lane = threadIdx.x & 31;
    A v = lane < CE_CLUSTER ? cluster_load(slot, lane) : identity;
    return warp_reduce(v, op);
}

template <typename T>
__device__ void cross_entropy_with_gradient(const T* logits, const int* labels, typename Stat<T>::type* loss,
                                            typename Stat<T>::type* lse, const void* scale, int scaleF64, T* grad, i64 v,
                                            int ignoreIndex) {
    typedef typename Acc<T>::type A;
    typedef typename Raw<JT_VECTOR_BYTES>::type R;
    constexpr int VEC = Vec<T>::N;
    __shared__ A scratch[32];
    __shared__ A blockMax, blockSum; // this block's partials, read by the cluster's blocks
    const unsigned rank = cluster_rank();
    const i64 row = cluster_index();
    // offsets within a row in 32 bits (the host launches rows of at most CE_CLUSTER x 1024 x CE_HELD chunks)
    const int chunks = (int) (v / VEC);
    const int span = CE_CLUSTER * (int) blockDim.x; // chunks one round of the cluster's loads covers
    const int first = (int) rank * (int) blockDim.x + (int) threadIdx.x;
    const T* xr = logits + row * v;
    const int label = labels[row];

    R held[CE_HELD];
#pragma unroll
    for (int u = 0; u < CE_HELD; u++) {
        const int k = first + u * span;
        if (k < chunks) held[u] = *reinterpret_cast<const R*>(xr + (i64) k * VEC);
    }

    A m = jt_neg_inf<A>();
#pragma unroll
    for (int u = 0; u < CE_HELD; u++) {
        if (first + u * span < chunks) {
            const T* e = reinterpret_cast<const T*>(&held[u]);
#pragma unroll
            for (int q = 0; q < VEC; q++) m = jt_max(m, load_acc<T>(e[q]));
        }
    }
    m = row_max(m, scratch);
    if (threadIdx.x == 0) blockMax = m;
    cluster_arrive();
    cluster_wait();
    m = cluster_reduce(&blockMax, jt_neg_inf<A>(), MaxOp());

    A s = (A) 0;
    if (m != jt_neg_inf<A>()) {
#pragma unroll
        for (int u = 0; u < CE_HELD; u++) {
            if (first + u * span < chunks) {
                const T* e = reinterpret_cast<const T*>(&held[u]);
#pragma unroll
                for (int q = 0; q < VEC; q++) {
                    const A x = load_acc<T>(e[q]);
                    s += x == jt_neg_inf<A>() ? (A) 0 : jt_exp(x - m);
                }
            }
        }
    }
    s = row_sum(s, scratch);
    if (threadIdx.x == 0) blockSum = s;
    cluster_arrive();
    cluster_wait();
    s = cluster_reduce(&blockSum, (A) 0, SumOp());
    cluster_arrive(); // this block is done reading the others' partials (their exit waits for it)

    const A l = (m == jt_neg_inf<A>() || m == -jt_neg_inf<A>()) ? m : m + jt_log(s);
    const bool ignored = label == ignoreIndex;
    const bool counted = !ignored && label >= 0 && label < v; // its loss is written by the thread holding the label
    if (rank == 0 && threadIdx.x == 0) {
        lse[row] = (typename Stat<T>::type) l;
        if (!counted) loss[row] = (typename Stat<T>::type) (ignored ? (A) 0 : jt_nan<A>());
    }
    const int hotChunk = label >= 0 ? label / VEC : -1; // the one-hot term's chunk and element (none for a negative label)
    const int hotElement = label - hotChunk * VEC;
    const A sc = (A) read_scalar(scale, scaleF64);
    T* gr = grad + row * v;
#pragma unroll
    for (int u = 0; u < CE_HELD; u++) {
        const int k = first + u * span;
        if (k < chunks) {
            const T* e = reinterpret_cast<const T*>(&held[u]);
            const bool hotHere = k == hotChunk;
            A g[VEC];
#pragma unroll
            for (int q = 0; q < VEC; q++) {
                const A x = load_acc<T>(e[q]);
                A p = jt_exp(x - l);
                if (hotHere && q == hotElement) {
                    p -= (A) 1;
                    if (counted) loss[row] = (typename Stat<T>::type) (l - x);
                }
                g[q] = ignored ? (A) 0 : sc * p; // 0 on an ignored row whatever its logits (NaN ones included), as loss.cu's
            }
            store_chunk<T, VEC>(gr + (i64) k * VEC, g);
        }
    }
    cluster_wait(); // no block leaves while another may still read its shared memory
}

#define JT_CE_CLUSTER(sfx, T) \
    extern "C" __global__ void __cluster_dims__(CE_CLUSTER, 1, 1) __launch_bounds__(1024) \
    cross_entropy_with_gradient_##sfx(const T* logits, const int* labels, Stat<T>::type* loss, Stat<T>::type* lse, \
                                      const void* scale, int scaleF64, T* grad, i64 v, int ignoreIndex) { \
        cross_entropy_with_gradient<T>(logits, labels, loss, lse, scale, scaleF64, grad, v, ignoreIndex); }
JT_FLOAT_TYPES(JT_CE_CLUSTER)
