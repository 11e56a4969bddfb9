package dev.jtune.cuda;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The struct layouts match C on 64-bit Linux. The expected numbers were printed by a C program compiled with
 * gcc against CUDA 13's cuda.h (sizeof/offsetof/_Alignof); the cuBLASLt ones from the declarations in
 * cublasLt.h (uint64_t data[8]; size_t, enum, float, int[4]).
 */
class StructLayoutTest {
    private static long offset(MemoryLayout layout, String... path) {
        MemoryLayout.PathElement[] elements = new MemoryLayout.PathElement[path.length];
        for (int i = 0; i < path.length; i++) {
            elements[i] = MemoryLayout.PathElement.groupElement(path[i]);
        }
        return layout.byteOffset(elements);
    }

    @Test
    void cuMemLocation() {
        var l = CudaDriver.CUmemLocation.LAYOUT;
        assertEquals(8, l.byteSize());
        assertEquals(4, l.byteAlignment());
        assertEquals(0, offset(l, "type"));
        assertEquals(4, offset(l, "id"));
    }

    @Test
    void cuMemAllocationProp() {
        var l = CudaDriver.CUmemAllocationProp.LAYOUT;
        assertEquals(32, l.byteSize());
        assertEquals(8, l.byteAlignment());
        assertEquals(0, offset(l, "type"));
        assertEquals(4, offset(l, "requestedHandleTypes"));
        assertEquals(8, offset(l, "location"));
        assertEquals(12, offset(l, "location", "id"));
        assertEquals(16, offset(l, "win32HandleMetaData"));
        assertEquals(24, offset(l, "allocFlags"));
        assertEquals(24, offset(l, "allocFlags", "compressionType"));
        assertEquals(25, offset(l, "allocFlags", "gpuDirectRDMACapable"));
        assertEquals(26, offset(l, "allocFlags", "usage"));
        assertEquals(28, offset(l, "allocFlags", "reserved"));
        assertEquals(8, CudaDriver.CUmemAllocationProp.allocFlags.LAYOUT.byteSize());
        assertEquals(24, CudaDriver.CUmemAllocationProp.allocFlags$OFFSET);
    }

    @Test
    void cuMemAccessDesc() {
        var l = CudaDriver.CUmemAccessDesc.LAYOUT;
        assertEquals(12, l.byteSize());
        assertEquals(4, l.byteAlignment());
        assertEquals(0, offset(l, "location"));
        assertEquals(8, offset(l, "flags"));
        assertEquals(8, CudaDriver.CUmemAccessDesc.flags$OFFSET);
    }

    @Test
    void cublasLtMatmulAlgo() {
        assertEquals(64, CublasLt.cublasLtMatmulAlgo_t.LAYOUT.byteSize());
        assertEquals(8, CublasLt.cublasLtMatmulAlgo_t.LAYOUT.byteAlignment());
    }

    @Test
    void cublasLtMatmulHeuristicResult() {
        var l = CublasLt.cublasLtMatmulHeuristicResult_t.LAYOUT;
        assertEquals(96, l.byteSize());
        assertEquals(8, l.byteAlignment());
        assertEquals(0, offset(l, "algo"));
        assertEquals(64, offset(l, "workspaceSize"));
        assertEquals(72, offset(l, "state"));
        assertEquals(76, offset(l, "wavesCount"));
        assertEquals(80, offset(l, "reserved"));
    }

    @Test
    void accessorsWriteWhereCReads() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment prop = CudaDriver.CUmemAllocationProp.allocate(arena);
            CudaDriver.CUmemAllocationProp.type(prop, CudaDriver.CU_MEM_ALLOCATION_TYPE_PINNED);
            CudaDriver.CUmemAllocationProp.locationType(prop, CudaDriver.CU_MEM_LOCATION_TYPE_DEVICE);
            CudaDriver.CUmemAllocationProp.locationId(prop, 3);
            CudaDriver.CUmemAllocationProp.allocFlags.usage(CudaDriver.CUmemAllocationProp.allocFlags(prop), (short) 0x0102);
            assertEquals(1, prop.get(java.lang.foreign.ValueLayout.JAVA_INT, 0));
            assertEquals(1, prop.get(java.lang.foreign.ValueLayout.JAVA_INT, 8));
            assertEquals(3, prop.get(java.lang.foreign.ValueLayout.JAVA_INT, 12));
            assertEquals(0x0102, prop.get(java.lang.foreign.ValueLayout.JAVA_SHORT, 26));
            assertEquals(3, CudaDriver.CUmemLocation.id(CudaDriver.CUmemAllocationProp.location(prop)));

            MemorySegment descs = CudaDriver.CUmemAccessDesc.allocateArray(2, arena);
            MemorySegment second = CudaDriver.CUmemAccessDesc.asSlice(descs, 1);
            CudaDriver.CUmemAccessDesc.locationId(second, 7);
            CudaDriver.CUmemAccessDesc.flags(second, CudaDriver.CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
            assertEquals(24, descs.byteSize());
            assertEquals(7, descs.get(java.lang.foreign.ValueLayout.JAVA_INT, 12 + 4));
            assertEquals(3, descs.get(java.lang.foreign.ValueLayout.JAVA_INT, 12 + 8));

            MemorySegment results = CublasLt.cublasLtMatmulHeuristicResult_t.allocateArray(2, arena);
            MemorySegment r1 = CublasLt.cublasLtMatmulHeuristicResult_t.asSlice(results, 1);
            CublasLt.cublasLtMatmulHeuristicResult_t.workspaceSize(r1, 1L << 20);
            CublasLt.cublasLtMatmulHeuristicResult_t.wavesCount(r1, 0.5f);
            CublasLt.cublasLtMatmulAlgo_t.data(CublasLt.cublasLtMatmulHeuristicResult_t.algo(r1), 7, 42L);
            assertEquals(1L << 20, results.get(java.lang.foreign.ValueLayout.JAVA_LONG, 96 + 64));
            assertEquals(0.5f, results.get(java.lang.foreign.ValueLayout.JAVA_FLOAT, 96 + 76));
            assertEquals(42L, results.get(java.lang.foreign.ValueLayout.JAVA_LONG, 96 + 56));
        }
    }
}
