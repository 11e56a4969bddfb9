package dev.jtune.engine.cuda;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static dev.jtune.engine.cuda.KernelParam.F64;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.LAYOUT;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.names;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The launch contracts on the driver: every source loads against its declarations, and a wrong one is refused. */
@Tag("gpu")
class KernelContractGpuTest {

    @Test
    void everySourceLoadsAndEveryDeclaredKernelMatchesTheDriversParameterInfo() {
        KernelCompiler compiler = CudaBackend.get(0).compiler();
        for (KernelSource source : KernelSources.ALL) {
            CudaModule m = compiler.module(source);
            for (String kernel : source.kernels().keySet()) {
                assertEquals(kernel, m.function(kernel).name());
            }
        }
    }

    @Test
    void aModuleThatDisagreesWithItsDeclarationsDoesNotLoadAndSaysWhere() {
        KernelSource wrong = KernelSource.builder("rope.cu")
                .kernel("rope_f64", PTR, PTR, PTR, I64, I64, I64, I64, I64, I64, I64, I64, I64, I64, F64, F64) // one parameter short
                .kernel("rope_f32", PTR, PTR, PTR, LAYOUT, I64, I64, I64, I64, I64, I64, I64, I64, I64, F64, F64, I32) // a struct where an i64 is
                .kernel("rope_f8", PTR) // no such kernel
                .build();
        KernelCompileException e = assertThrows(KernelCompileException.class, () -> CudaBackend.get(0).compiler().module(wrong));
        String m = e.getMessage();
        assertTrue(m.contains("kernels/rope.cu does not match its launch contract (3 problems)"), m);
        assertTrue(m.contains("kernel rope_f64 takes more than 15 parameters, its signature declares 15"), m);
        assertTrue(m.contains("kernel rope_f32 parameter 3 is 8 bytes, its signature declares LAYOUT (136 bytes)"), m);
        assertTrue(m.contains("no kernel rope_f8"), m);
    }

    @Test
    void aLaunchWithOtherArgumentsThanDeclaredIsRefusedBeforeTheDriverSeesIt() {
        CudaBackend gpu = CudaBackend.get(0);
        CudaFunction rope = gpu.compiler().module(RopeKernels.SOURCE).function("rope_f32");
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(0).pointer(0).pointer(0).i64(1).i64(1).i64(1).i64(2).i64(2).i64(2).i64(2).i64(2).i64(2).i64(2)
                    .f64(10000).f64(1).i64(0); // inverse as i64
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> rope.launch(gpu.stream(), 1, 32, 8, args));
            assertEquals("launch of kernel rope_f32: argument 15 is I64 (8 bytes), its signature declares I32 (4 bytes)", e.getMessage());
        }
        assertEquals(names("rope_%s", FLOATS), RopeKernels.SOURCE.kernels().keySet().stream().toList());
    }
}
