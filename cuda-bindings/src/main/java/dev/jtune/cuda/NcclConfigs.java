package dev.jtune.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** nccl.h's {@code NCCL_CONFIG_INITIALIZER} (a macro, so no binding) for the fields {@link Nccl.ncclConfig_t} binds. */
public final class NcclConfigs {
    /** NCCL_VERSION(2, 17, 0): the version whose fields are bound; NCCL keeps its defaults for every later field. */
    public static final int BOUND_VERSION = 21700;

    private NcclConfigs() {
    }

    /** A configuration for a non-blocking communicator (every call may return ncclInProgress; poll its async error). */
    public static MemorySegment nonBlocking(Arena arena) {
        MemorySegment c = arena.allocate(Nccl.ncclConfig_t.LAYOUT);
        Nccl.ncclConfig_t.size(c, Nccl.ncclConfig_t.sizeof());
        Nccl.ncclConfig_t.magic(c, Nccl.NCCL_API_MAGIC);
        Nccl.ncclConfig_t.version(c, BOUND_VERSION);
        Nccl.ncclConfig_t.blocking(c, 0);
        Nccl.ncclConfig_t.cgaClusterSize(c, Nccl.NCCL_CONFIG_UNDEF_INT);
        Nccl.ncclConfig_t.minCTAs(c, Nccl.NCCL_CONFIG_UNDEF_INT);
        Nccl.ncclConfig_t.maxCTAs(c, Nccl.NCCL_CONFIG_UNDEF_INT);
        Nccl.ncclConfig_t.netName(c, MemorySegment.NULL);
        Nccl.ncclConfig_t.splitShare(c, Nccl.NCCL_CONFIG_UNDEF_INT);
        return c;
    }
}
