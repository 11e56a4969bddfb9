package dev.jtune.cuda;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.jtune.cuda.CudaException.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The driver bindings against a real GPU. */
@Tag("gpu")
class DriverGpuTest {
    @BeforeEach
    void current() {
        Gpu.makeCurrent();
    }

    @Test
    void deviceInformation() {
        System.out.println(NativeLibraries.describe(CudaLibrary.DRIVER));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(JAVA_INT);
            check(CudaDriver.cuDriverGetVersion(version), "cuDriverGetVersion");
            assertTrue(version.get(JAVA_INT, 0) >= 13000, "driver API version " + version.get(JAVA_INT, 0));

            MemorySegment count = arena.allocate(JAVA_INT);
            check(CudaDriver.cuDeviceGetCount(count), "cuDeviceGetCount");
            assertTrue(count.get(JAVA_INT, 0) >= 1);

            MemorySegment name = arena.allocate(256);
            check(CudaDriver.cuDeviceGetName(name, 256, Gpu.DEVICE), "cuDeviceGetName");
            String deviceName = name.getString(0);
            assertFalse(deviceName.isBlank());

            MemorySegment total = arena.allocate(JAVA_LONG);
            check(CudaDriver.cuDeviceTotalMem_v2(total, Gpu.DEVICE), "cuDeviceTotalMem_v2");
            assertTrue(total.get(JAVA_LONG, 0) > 1L << 30);

            MemorySegment free = arena.allocate(JAVA_LONG);
            MemorySegment total2 = arena.allocate(JAVA_LONG);
            check(CudaDriver.cuMemGetInfo_v2(free, total2), "cuMemGetInfo_v2");
            assertTrue(free.get(JAVA_LONG, 0) > 0 && free.get(JAVA_LONG, 0) <= total2.get(JAVA_LONG, 0));

            MemorySegment ctx = arena.allocate(ADDRESS);
            check(CudaDriver.cuCtxGetCurrent(ctx), "cuCtxGetCurrent");
            assertEquals(Gpu.CONTEXT.address(), ctx.get(ADDRESS, 0).address());
            MemorySegment dev = arena.allocate(JAVA_INT);
            check(CudaDriver.cuCtxGetDevice(dev), "cuCtxGetDevice");
            assertEquals(Gpu.DEVICE, dev.get(JAVA_INT, 0));
            MemorySegment flags = arena.allocate(JAVA_INT);
            MemorySegment active = arena.allocate(JAVA_INT);
            check(CudaDriver.cuDevicePrimaryCtxGetState(Gpu.DEVICE, flags, active), "cuDevicePrimaryCtxGetState");
            assertEquals(1, active.get(JAVA_INT, 0));

            int major = Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
            int sms = Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
            System.out.printf("%s: %s, %d SMs, %d MiB, L2 %d KiB, opt-in smem %d KiB, bus %d bits, clocks %d/%d kHz%n",
                    deviceName, Gpu.arch(), sms, total.get(JAVA_LONG, 0) >> 20,
                    Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE) >> 10,
                    Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN) >> 10,
                    Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH),
                    Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_CLOCK_RATE),
                    Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE));
            assertTrue(major >= 7);
            assertTrue(sms > 0);
            assertEquals(32, Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_WARP_SIZE));
            assertEquals(1024, Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK));
            assertTrue(Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE) > 0);
            assertTrue(Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN) >= 48 << 10);
            assertTrue(Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR) >= 64 << 10);
            assertTrue(Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH) > 0);
            assertTrue(Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_CLOCK_RATE) > 0);
            assertTrue(Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE) > 0);
            assertTrue(Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED) >= 0);
        }
    }

    @Test
    void allocMemsetCopyRoundTrip() {
        long bytes = 1 << 20;
        long a = Gpu.malloc(bytes);
        long b = Gpu.malloc(bytes);
        try (Arena arena = Arena.ofConfined()) {
            check(CudaDriver.cuMemsetD32_v2(a, 0xDEADBEEF, bytes / 4), "cuMemsetD32_v2");
            MemorySegment words = Gpu.download(a, bytes, arena);
            for (long i = 0; i < bytes / 4; i += 997) {
                assertEquals(0xDEADBEEF, words.getAtIndex(JAVA_INT, i));
            }
            check(CudaDriver.cuMemsetD16_v2(a, 0xBEEF, bytes / 2), "cuMemsetD16_v2");
            assertEquals((short) 0xBEEF, Gpu.download(a, bytes, arena).getAtIndex(JAVA_SHORT, 12345));
            check(CudaDriver.cuMemsetD8_v2(a, 0x5A, bytes), "cuMemsetD8_v2");
            assertEquals((byte) 0x5A, Gpu.download(a, bytes, arena).get(JAVA_BYTE, bytes - 1));

            byte[] data = new byte[(int) bytes];
            Seeds.random(1).nextBytes(data);
            Gpu.upload(a, arena.allocateFrom(JAVA_BYTE, data));
            check(CudaDriver.cuMemcpyDtoD_v2(b, a, bytes), "cuMemcpyDtoD_v2");
            assertArrayEquals(data, Gpu.download(b, bytes, arena).toArray(JAVA_BYTE));
        } finally {
            Gpu.free(a);
            Gpu.free(b);
        }
    }

    @Test
    void asyncCopiesOnAStream() {
        long bytes = 4 << 20;
        long a = Gpu.malloc(bytes);
        long b = Gpu.malloc(bytes);
        MemorySegment stream = Gpu.createStream();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(bytes, 4096);
            for (long i = 0; i < bytes / 4; i++) {
                src.setAtIndex(JAVA_INT, i, (int) (i * 2654435761L));
            }
            MemorySegment dst = arena.allocate(bytes, 4096);
            check(CudaDriver.cuMemHostRegister_v2(src, bytes, CudaDriver.CU_MEMHOSTREGISTER_PORTABLE), "cuMemHostRegister_v2");
            check(CudaDriver.cuMemHostRegister_v2(dst, bytes, 0), "cuMemHostRegister_v2");
            try {
                check(CudaDriver.cuMemsetD32Async(b, 7, bytes / 4, stream), "cuMemsetD32Async");
                check(CudaDriver.cuMemcpyHtoDAsync_v2(a, src, bytes, stream), "cuMemcpyHtoDAsync_v2");
                check(CudaDriver.cuMemcpyDtoDAsync_v2(b, a, bytes / 2, stream), "cuMemcpyDtoDAsync_v2");
                check(CudaDriver.cuMemsetD8Async(b + bytes - 1, 0x11, 1, stream), "cuMemsetD8Async");
                check(CudaDriver.cuMemsetD16Async(b + bytes - 4, 0x2222, 1, stream), "cuMemsetD16Async");
                check(CudaDriver.cuMemcpyDtoHAsync_v2(dst, b, bytes, stream), "cuMemcpyDtoHAsync_v2");
                check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
                assertEquals(CudaDriver.CUDA_SUCCESS, CudaDriver.cuStreamQuery(stream));
                for (long i = 0; i < bytes / 8; i += 101) {
                    assertEquals(src.getAtIndex(JAVA_INT, i), dst.getAtIndex(JAVA_INT, i));
                }
                assertEquals(7, dst.getAtIndex(JAVA_INT, bytes / 4 - 2));
                assertEquals((short) 0x2222, dst.get(JAVA_SHORT, bytes - 4));
                assertEquals((byte) 0x11, dst.get(JAVA_BYTE, bytes - 1));
            } finally {
                check(CudaDriver.cuMemHostUnregister(src), "cuMemHostUnregister");
                check(CudaDriver.cuMemHostUnregister(dst), "cuMemHostUnregister");
            }
        } finally {
            check(CudaDriver.cuStreamDestroy_v2(stream), "cuStreamDestroy_v2");
            Gpu.free(a);
            Gpu.free(b);
        }
    }

    @Test
    void virtualMemoryReserveCreateMapAccessUnmapRelease() {
        if (Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED) == 0) {
            throw new org.opentest4j.TestAbortedException("no virtual memory management on this device");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment prop = CudaDriver.CUmemAllocationProp.allocate(arena);
            CudaDriver.CUmemAllocationProp.type(prop, CudaDriver.CU_MEM_ALLOCATION_TYPE_PINNED);
            CudaDriver.CUmemAllocationProp.requestedHandleTypes(prop, CudaDriver.CU_MEM_HANDLE_TYPE_NONE);
            CudaDriver.CUmemAllocationProp.locationType(prop, CudaDriver.CU_MEM_LOCATION_TYPE_DEVICE);
            CudaDriver.CUmemAllocationProp.locationId(prop, Gpu.DEVICE);

            MemorySegment out = arena.allocate(JAVA_LONG);
            check(CudaDriver.cuMemGetAllocationGranularity(out, prop, CudaDriver.CU_MEM_ALLOC_GRANULARITY_MINIMUM),
                    "cuMemGetAllocationGranularity");
            long granularity = out.get(JAVA_LONG, 0);
            check(CudaDriver.cuMemGetAllocationGranularity(out, prop, CudaDriver.CU_MEM_ALLOC_GRANULARITY_RECOMMENDED),
                    "cuMemGetAllocationGranularity");
            assertTrue(granularity > 0 && out.get(JAVA_LONG, 0) >= granularity);
            System.out.println("VMM granularity " + granularity + ", recommended " + out.get(JAVA_LONG, 0));

            long size = 2 * granularity;
            check(CudaDriver.cuMemAddressReserve(out, 4 * size, 0L, 0L, 0L), "cuMemAddressReserve");
            long base = out.get(JAVA_LONG, 0);
            assertNotEquals(0L, base);
            check(CudaDriver.cuMemCreate(out, size, prop, 0L), "cuMemCreate");
            long handle = out.get(JAVA_LONG, 0);
            long at = base + size; // map into the middle of the reservation
            check(CudaDriver.cuMemMap(at, size, 0L, handle, 0L), "cuMemMap");

            MemorySegment desc = CudaDriver.CUmemAccessDesc.allocate(arena);
            CudaDriver.CUmemAccessDesc.locationType(desc, CudaDriver.CU_MEM_LOCATION_TYPE_DEVICE);
            CudaDriver.CUmemAccessDesc.locationId(desc, Gpu.DEVICE);
            CudaDriver.CUmemAccessDesc.flags(desc, CudaDriver.CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
            check(CudaDriver.cuMemSetAccess(at, size, desc, 1L), "cuMemSetAccess");

            float[] values = new float[(int) (size / 4)];
            for (int i = 0; i < values.length; i++) {
                values[i] = i * 0.5f;
            }
            Gpu.upload(at, arena.allocateFrom(JAVA_FLOAT, values));
            check(CudaDriver.cuMemsetD32_v2(at, Float.floatToRawIntBits(-1f), 16), "cuMemsetD32_v2");
            float[] back = Gpu.download(at, size, arena).toArray(JAVA_FLOAT);
            for (int i = 0; i < 16; i++) {
                values[i] = -1f;
            }
            assertArrayEquals(values, back);

            check(CudaDriver.cuMemUnmap(at, size), "cuMemUnmap");
            check(CudaDriver.cuMemRelease(handle), "cuMemRelease");
            check(CudaDriver.cuMemAddressFree(base, 4 * size), "cuMemAddressFree");
        }
    }

    @Test
    void pinnedHostMemory() {
        long bytes = 1 << 20;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(CudaDriver.cuMemHostAlloc(out, bytes, CudaDriver.CU_MEMHOSTALLOC_PORTABLE | CudaDriver.CU_MEMHOSTALLOC_DEVICEMAP),
                    "cuMemHostAlloc");
            MemorySegment pinned = out.get(ADDRESS, 0).reinterpret(bytes);
            try {
                for (long i = 0; i < bytes / 4; i++) {
                    pinned.setAtIndex(JAVA_INT, i, (int) i);
                }
                long device = Gpu.malloc(bytes);
                try {
                    Gpu.upload(device, pinned);
                    assertEquals(12345, Gpu.download(device, bytes, arena).getAtIndex(JAVA_INT, 12345));
                } finally {
                    Gpu.free(device);
                }
                // mapped: the GPU writes straight into it
                MemorySegment mapped = arena.allocate(JAVA_LONG);
                check(CudaDriver.cuMemHostGetDevicePointer_v2(mapped, pinned, 0), "cuMemHostGetDevicePointer_v2");
                check(CudaDriver.cuMemsetD32_v2(mapped.get(JAVA_LONG, 0), 99, 8), "cuMemsetD32_v2");
                check(CudaDriver.cuCtxSynchronize(), "cuCtxSynchronize");
                assertEquals(99, pinned.getAtIndex(JAVA_INT, 7));
                assertEquals(8, pinned.getAtIndex(JAVA_INT, 8));
            } finally {
                check(CudaDriver.cuMemFreeHost(pinned), "cuMemFreeHost");
            }
        }
    }

    @Test
    void streamsAndEventTiming() {
        long bytes = 256L << 20;
        long buffer = Gpu.malloc(bytes);
        MemorySegment stream = Gpu.createStream();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(CudaDriver.cuStreamCreateWithPriority(out, CudaDriver.CU_STREAM_NON_BLOCKING, 0), "cuStreamCreateWithPriority");
            MemorySegment other = out.get(ADDRESS, 0);
            check(CudaDriver.cuEventCreate(out, CudaDriver.CU_EVENT_DEFAULT), "cuEventCreate");
            MemorySegment start = out.get(ADDRESS, 0);
            check(CudaDriver.cuEventCreate(out, CudaDriver.CU_EVENT_DEFAULT), "cuEventCreate");
            MemorySegment end = out.get(ADDRESS, 0);
            check(CudaDriver.cuEventCreate(out, CudaDriver.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
            MemorySegment untimed = out.get(ADDRESS, 0);

            check(CudaDriver.cuEventRecord(start, stream), "cuEventRecord");
            for (int i = 0; i < 8; i++) {
                check(CudaDriver.cuMemsetD32Async(buffer, i, bytes / 4, stream), "cuMemsetD32Async");
            }
            check(CudaDriver.cuEventRecord(end, stream), "cuEventRecord");
            check(CudaDriver.cuEventRecord(untimed, stream), "cuEventRecord");
            int early = CudaDriver.cuEventQuery(end);
            assertTrue(early == CudaDriver.CUDA_SUCCESS || early == CudaDriver.CUDA_ERROR_NOT_READY, "cuEventQuery: " + early);
            // the other stream waits for the first, then overwrites the start of the buffer
            check(CudaDriver.cuStreamWaitEvent(other, end, 0), "cuStreamWaitEvent");
            check(CudaDriver.cuMemsetD32Async(buffer, 42, 1, other), "cuMemsetD32Async");
            check(CudaDriver.cuStreamSynchronize(other), "cuStreamSynchronize");
            check(CudaDriver.cuEventSynchronize(end), "cuEventSynchronize");
            assertEquals(CudaDriver.CUDA_SUCCESS, CudaDriver.cuEventQuery(end));

            MemorySegment ms = arena.allocate(JAVA_FLOAT);
            check(CudaDriver.cuEventElapsedTime_v2(ms, start, end), "cuEventElapsedTime_v2");
            float millis = ms.get(JAVA_FLOAT, 0);
            System.out.printf("8 x cuMemsetD32Async of 256 MiB: %.3f ms (%.0f GB/s)%n", millis, 8 * bytes / (millis * 1e6));
            assertTrue(millis > 0, "elapsed " + millis);
            CudaException e = assertThrows(CudaException.class,
                    () -> check(CudaDriver.cuEventElapsedTime_v2(ms, start, untimed), "cuEventElapsedTime_v2"));
            assertEquals(CudaDriver.CUDA_ERROR_INVALID_HANDLE, e.code());

            MemorySegment words = Gpu.download(buffer, 8, arena);
            assertEquals(42, words.getAtIndex(JAVA_INT, 0));
            assertEquals(7, words.getAtIndex(JAVA_INT, 1));

            check(CudaDriver.cuCtxSynchronize_v2(Gpu.CONTEXT), "cuCtxSynchronize_v2");
            for (MemorySegment event : new MemorySegment[] {start, end, untimed}) {
                check(CudaDriver.cuEventDestroy_v2(event), "cuEventDestroy_v2");
            }
            check(CudaDriver.cuStreamDestroy_v2(other), "cuStreamDestroy_v2");
        } finally {
            check(CudaDriver.cuStreamDestroy_v2(stream), "cuStreamDestroy_v2");
            Gpu.free(buffer);
        }
    }

    @Test
    void outOfMemoryIsReportedAsSuch() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            int rc = CudaDriver.cuMemAlloc_v2(out, 1L << 50);
            assertEquals(CudaDriver.CUDA_ERROR_OUT_OF_MEMORY, rc);
            CudaException e = assertThrows(CudaException.class, () -> check(rc, "cuMemAlloc_v2"));
            assertTrue(e.isOutOfMemory());
            assertEquals("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory", e.getMessage());
        }
    }

    /**
     * A tensor map for the bulk tensor copy engine (compute capability 9.0+): a 2-D bf16 [256 x 128] tensor in 64 x 64
     * boxes with the 128-byte swizzle encodes; a box over 256 elements on a side is refused as an invalid value.
     */
    @Test
    void tensorMapsEncode() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ptr = arena.allocate(JAVA_LONG);
            check(CudaDriver.cuMemAlloc_v2(ptr, 256L * 128 * 2), "cuMemAlloc_v2");
            long base = ptr.get(JAVA_LONG, 0);
            try {
                MemorySegment map = CudaDriver.CUtensorMap.allocate(arena);
                MemorySegment dims = arena.allocateFrom(JAVA_LONG, 128, 256); // innermost first
                MemorySegment strides = arena.allocateFrom(JAVA_LONG, 128 * 2); // bytes, for the dimensions after the first
                MemorySegment ones = arena.allocateFrom(JAVA_INT, 1, 1);
                int ok = CudaDriver.cuTensorMapEncodeTiled(map, CudaDriver.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, MemorySegment.ofAddress(base),
                        dims, strides, arena.allocateFrom(JAVA_INT, 64, 64), ones, CudaDriver.CU_TENSOR_MAP_INTERLEAVE_NONE,
                        CudaDriver.CU_TENSOR_MAP_SWIZZLE_128B, CudaDriver.CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                        CudaDriver.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
                int bad = CudaDriver.cuTensorMapEncodeTiled(map, CudaDriver.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, MemorySegment.ofAddress(base),
                        dims, strides, arena.allocateFrom(JAVA_INT, 64, 512), ones, CudaDriver.CU_TENSOR_MAP_INTERLEAVE_NONE,
                        CudaDriver.CU_TENSOR_MAP_SWIZZLE_128B, CudaDriver.CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                        CudaDriver.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
                if (Gpu.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR) >= 9) {
                    assertEquals(CudaDriver.CUDA_SUCCESS, ok, "a 64 x 64 bf16 box with the 128-byte swizzle");
                } else {
                    assertNotEquals(CudaDriver.CUDA_SUCCESS, ok, "tensor maps need compute capability 9.0");
                }
                assertEquals(CudaDriver.CUDA_ERROR_INVALID_VALUE, bad, "a box of 512 rows");
            } finally {
                check(CudaDriver.cuMemFree_v2(base), "cuMemFree_v2");
            }
        }
    }
}
