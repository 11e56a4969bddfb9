package dev.jtune.engine;

/**
 * Where a tensor's bytes live on its device. {@link #DEVICE}: the device's own memory (GPU memory from the caching
 * allocator; host memory for cpu; simulated for meta). {@link #HOST_MAPPED}: page-locked host memory that the device
 * maps into its address space (CUDA's {@code cuMemHostAlloc(PORTABLE | DEVICEMAP)}, never managed memory), so kernels
 * read and write it over PCIe while the host reads and writes it in place: for state that is large and touched once
 * per step (paged optimizers, host-offloaded optimizer state). Host-mapped bytes are counted apart from device memory
 * ({@link dev.jtune.engine.memory.MemoryStats#host()}), on every backend: a device's peak never includes them. On cpu
 * it is plain host memory; on meta, simulated and counted as host.
 */
public enum Placement {
    DEVICE, HOST_MAPPED
}
