package dev.jtune.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The multicast switches reach the C environment that NCCL reads, whatever the JVM was started with. */
class NcclEnvironmentTest {
    @Test
    void applySetsEveryVariableInTheCEnvironment() {
        NcclEnvironment.apply();
        NcclEnvironment.apply(); // idempotent
        assertEquals("0", NcclEnvironment.get("NCCL_NVLS_ENABLE"));
        assertEquals("1", NcclEnvironment.get("TORCH_SYMM_MEM_DISABLE_MULTICAST"));
        assertEquals("1", NcclEnvironment.get("NVSHMEM_DISABLE_NVLS"));
        assertEquals(3, NcclEnvironment.SAFETY.size());
    }
}
