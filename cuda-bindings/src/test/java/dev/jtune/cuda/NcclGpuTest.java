package dev.jtune.cuda;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import static dev.jtune.cuda.CudaException.check;
import static dev.jtune.cuda.CudaException.checkNccl;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The NCCL bindings on one GPU: a world of one rank made with a non-blocking configuration (polled through the
 * asynchronous error), the four collectives on the GPU's own stream (each the identity at one rank, so exact), then
 * finalize and destroy; and an invalid argument reported by name on a world then aborted. NVLink multicast is switched off first
 * ({@link NcclEnvironment}).
 */
@Tag("gpu")
class NcclGpuTest {
    private static final int N = 4096;

    @BeforeEach
    void current() {
        Gpu.makeCurrent();
        NcclEnvironment.apply();
    }

    /** Waits until a non-blocking communicator's pending operation is done, failing on its error. */
    private static void await(MemorySegment comm, Arena arena, String what) {
        MemorySegment state = arena.allocate(JAVA_INT);
        long deadline = System.nanoTime() + 60_000_000_000L;
        do {
            checkNccl(Nccl.ncclCommGetAsyncError(comm, state), "ncclCommGetAsyncError");
            if (state.get(JAVA_INT, 0) != Nccl.ncclInProgress) {
                checkNccl(state.get(JAVA_INT, 0), what);
                return;
            }
            Thread.onSpinWait();
        } while (System.nanoTime() < deadline);
        throw new AssertionError(what + " still in progress after 60 s");
    }

    /** A new unique id, and a non-blocking communicator of one rank on it, made. */
    private static MemorySegment worldOfOne(Arena arena) {
        MemorySegment id = arena.allocate(Nccl.ncclUniqueId.LAYOUT);
        checkNccl(Nccl.ncclGetUniqueId(id), "ncclGetUniqueId");
        MemorySegment commOut = arena.allocate(ADDRESS);
        int rc = Nccl.ncclCommInitRankConfig(commOut, 1, id, 0, NcclConfigs.nonBlocking(arena));
        assertTrue(rc == Nccl.ncclSuccess || rc == Nccl.ncclInProgress, "ncclCommInitRankConfig returned " + rc);
        MemorySegment comm = commOut.get(ADDRESS, 0);
        await(comm, arena, "ncclCommInitRankConfig");
        return comm;
    }

    @Test
    void aWorldOfOneRunsEveryCollective() {
        System.out.println(NativeLibraries.describe(CudaLibrary.NCCL));
        Random rnd = Seeds.random();
        float[] values = new float[N];
        for (int i = 0; i < N; i++) {
            values[i] = (float) rnd.nextGaussian();
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(JAVA_INT);
            checkNccl(Nccl.ncclGetVersion(version), "ncclGetVersion");
            System.out.println("NCCL version code " + version.get(JAVA_INT, 0));
            assertTrue(version.get(JAVA_INT, 0) >= 22800, "NCCL 2.28 or later: " + version.get(JAVA_INT, 0));

            MemorySegment comm = worldOfOne(arena);

            MemorySegment streamOut = arena.allocate(ADDRESS);
            check(CudaDriver.cuStreamCreate(streamOut, 1), "cuStreamCreate"); // CU_STREAM_NON_BLOCKING
            MemorySegment stream = streamOut.get(ADDRESS, 0);
            long bytes = (long) N * 4;
            MemorySegment ptr = arena.allocate(JAVA_LONG);
            check(CudaDriver.cuMemAlloc_v2(ptr, bytes), "cuMemAlloc_v2");
            long a = ptr.get(JAVA_LONG, 0);
            check(CudaDriver.cuMemAlloc_v2(ptr, bytes), "cuMemAlloc_v2");
            long b = ptr.get(JAVA_LONG, 0);
            try {
                MemorySegment host = arena.allocateFrom(JAVA_FLOAT, values);
                check(CudaDriver.cuMemcpyHtoD_v2(a, host, bytes), "cuMemcpyHtoD_v2");
                MemorySegment sa = MemorySegment.ofAddress(a);
                MemorySegment sb = MemorySegment.ofAddress(b);
                checkNccl(Nccl.ncclAllReduce(sa, sa, N, Nccl.ncclFloat32, Nccl.ncclSum, comm, stream), "ncclAllReduce (in place)");
                checkNccl(Nccl.ncclGroupStart(), "ncclGroupStart");
                checkNccl(Nccl.ncclBroadcast(sa, sb, N, Nccl.ncclFloat32, 0, comm, stream), "ncclBroadcast");
                checkNccl(Nccl.ncclGroupEnd(), "ncclGroupEnd");
                checkNccl(Nccl.ncclReduceScatter(sb, sa, N, Nccl.ncclFloat32, Nccl.ncclAvg, comm, stream), "ncclReduceScatter");
                checkNccl(Nccl.ncclAllGather(sa, sb, N, Nccl.ncclFloat32, comm, stream), "ncclAllGather");
                await(comm, arena, "the collectives");
                check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
                MemorySegment back = arena.allocate(JAVA_FLOAT, N);
                check(CudaDriver.cuMemcpyDtoH_v2(back, b, bytes), "cuMemcpyDtoH_v2");
                assertArrayEquals(values, back.toArray(JAVA_FLOAT), "one rank: every collective is the identity");

            } finally {
                check(CudaDriver.cuMemFree_v2(a), "cuMemFree_v2");
                check(CudaDriver.cuMemFree_v2(b), "cuMemFree_v2");
            }
            int fin = Nccl.ncclCommFinalize(comm);
            assertTrue(fin == Nccl.ncclSuccess || fin == Nccl.ncclInProgress, "ncclCommFinalize returned " + fin);
            await(comm, arena, "ncclCommFinalize");
            checkNccl(Nccl.ncclCommDestroy(comm), "ncclCommDestroy");
            check(CudaDriver.cuStreamDestroy_v2(stream), "cuStreamDestroy_v2");
        }
    }

    /** A bad data type is ncclInvalidArgument, by name, from the call or the communicator's state; the world is then aborted. */
    @Test
    void anInvalidArgumentIsNamed() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment comm = worldOfOne(arena);
            MemorySegment ptr = arena.allocate(JAVA_LONG);
            check(CudaDriver.cuMemAlloc_v2(ptr, 1024), "cuMemAlloc_v2");
            long a = ptr.get(JAVA_LONG, 0);
            try {
                MemorySegment sa = MemorySegment.ofAddress(a);
                CudaException e = assertThrows(CudaException.class, () -> {
                    checkNccl(Nccl.ncclAllReduce(sa, sa, 256, 99, Nccl.ncclSum, comm, MemorySegment.NULL), "ncclAllReduce (type 99)");
                    await(comm, arena, "ncclAllReduce (type 99)");
                });
                assertEquals("ncclInvalidArgument", e.errorName(), e.getMessage());
                System.out.println("as reported: " + e.getMessage());
            } finally {
                checkNccl(Nccl.ncclCommAbort(comm), "ncclCommAbort");
                check(CudaDriver.cuMemFree_v2(a), "cuMemFree_v2");
            }
        }
    }
}
