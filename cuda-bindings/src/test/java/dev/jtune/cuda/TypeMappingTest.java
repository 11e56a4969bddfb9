package dev.jtune.cuda;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every binding follows the agreed C-to-Java mapping, and its Java signature is exactly the type of the
 * downcall handle it invokes (a mismatch would only surface as WrongMethodTypeException on a GPU machine).
 */
class TypeMappingTest {
    private static final Set<Class<?>> ALLOWED = Set.of(int.class, long.class, float.class, double.class, MemorySegment.class);

    static List<Method> bindings() {
        return SymbolsFileTest.BINDINGS.stream()
                .flatMap(c -> Arrays.stream(c.getDeclaredMethods()))
                .filter(m -> Modifier.isPublic(m.getModifiers()) && Modifier.isStatic(m.getModifiers()))
                .toList();
    }

    @Test
    void onlyPrimitivesAndMemorySegments() {
        List<Method> methods = bindings();
        assertTrue(methods.size() > 100, "found only " + methods.size() + " bindings");
        for (Method m : methods) {
            String where = m.getDeclaringClass().getSimpleName() + "." + m.getName();
            assertTrue(ALLOWED.contains(m.getReturnType()), where + " returns " + m.getReturnType());
            for (Class<?> p : m.getParameterTypes()) {
                assertTrue(ALLOWED.contains(p), where + " takes " + p);
            }
            assertEquals(0, m.getExceptionTypes().length, where + " declares exceptions");
        }
    }

    @Test
    void signaturesMatchTheirDowncallHandles() throws Exception {
        // Resolving a holder needs no GPU: without the library it holds a thrower of the same type.
        for (Method m : bindings()) {
            Class<?> holder = Class.forName(m.getDeclaringClass().getName() + "$" + m.getName() + "$");
            Field handle = holder.getDeclaredField("HANDLE");
            handle.setAccessible(true);
            MethodType type = ((MethodHandle) handle.get(null)).type();
            assertEquals(MethodType.methodType(m.getReturnType(), m.getParameterTypes()), type,
                    m.getDeclaringClass().getSimpleName() + "." + m.getName());
        }
    }

    private static void assertSignature(Class<?> owner, String name, Class<?> returns, Class<?>... params) throws Exception {
        Method m = owner.getMethod(name, params);
        assertEquals(returns, m.getReturnType(), name);
    }

    @Test
    void spotChecksAgainstTheHeaders() throws Exception {
        Class<MemorySegment> seg = MemorySegment.class;
        // ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
        //                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
        assertSignature(Nccl.class, "ncclAllReduce", int.class, seg, seg, long.class, int.class, int.class, seg, seg);
        // ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId commId (by value), int rank, ncclConfig_t *config)
        assertSignature(Nccl.class, "ncclCommInitRankConfig", int.class, seg, int.class, seg, int.class, seg);
        assertEquals(128, Nccl.ncclUniqueId.sizeof());
        assertEquals(48, Nccl.ncclConfig_t.sizeof()); // size_t, 2 x unsigned, 4 x int, a pointer, an int, padded to 8
        // CUresult cuTensorMapEncodeTiled(CUtensorMap *, CUtensorMapDataType, cuuint32_t rank, void *, const cuuint64_t *dim,
        //     const cuuint64_t *strides, const cuuint32_t *box, const cuuint32_t *elementStrides, 4 x enum)
        assertSignature(CudaDriver.class, "cuTensorMapEncodeTiled", int.class, seg, int.class, int.class, seg, seg, seg, seg, seg,
                int.class, int.class, int.class, int.class);
        assertEquals(128, CudaDriver.CUtensorMap.sizeof());
        assertEquals(64, CudaDriver.CUtensorMap.LAYOUT.byteAlignment());
        // CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
        assertSignature(CudaDriver.class, "cuMemAlloc_v2", int.class, seg, long.class);
        // CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream)
        assertSignature(CudaDriver.class, "cuMemcpyHtoDAsync_v2", int.class, long.class, seg, long.class, seg);
        // CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle, unsigned long long flags)
        assertSignature(CudaDriver.class, "cuMemMap", int.class, long.class, long.class, long.class, long.class, long.class);
        // CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
        assertSignature(CudaDriver.class, "cuDeviceGetAttribute", int.class, seg, int.class, int.class);
        // CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd)
        assertSignature(CudaDriver.class, "cuEventElapsedTime_v2", int.class, seg, seg, seg);
        // CUresult cuLaunchKernel(CUfunction f, 7 x unsigned int, CUstream hStream, void **kernelParams, void **extra)
        assertSignature(CudaDriver.class, "cuLaunchKernel", int.class, seg, int.class, int.class, int.class,
                int.class, int.class, int.class, int.class, seg, seg, seg);
        // CUresult cuFuncGetParamInfo(CUfunction func, size_t paramIndex, size_t *paramOffset, size_t *paramSize)
        assertSignature(CudaDriver.class, "cuFuncGetParamInfo", int.class, seg, long.class, seg, seg);
        // CUresult cuCtxSynchronize(void)
        assertSignature(CudaDriver.class, "cuCtxSynchronize", int.class);
        // const char *nvrtcGetErrorString(nvrtcResult result)
        assertSignature(Nvrtc.class, "nvrtcGetErrorString", seg, int.class);
        // cublasStatus_t cublasGemmStridedBatchedEx(..., long long int strideA, ...): 23 parameters
        assertEquals(23, Arrays.stream(Cublas.class.getDeclaredMethods())
                .filter(m -> m.getName().equals("cublasGemmStridedBatchedEx")).findFirst().orElseThrow().getParameterCount());
        // size_t cublasLtGetVersion(void)
        assertSignature(CublasLt.class, "cublasLtGetVersion", long.class);
        // cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld)
        assertSignature(CublasLt.class, "cublasLtMatrixLayoutCreate", int.class, seg, int.class, long.class, long.class, long.class);
    }
}
