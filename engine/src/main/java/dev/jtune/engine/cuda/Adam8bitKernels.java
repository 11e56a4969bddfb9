package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.fused.ParameterTable;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.memory.CachingAllocator;
import dev.jtune.engine.quant.DynamicMap;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static dev.jtune.cuda.CudaException.check;
import static dev.jtune.engine.cuda.KernelParam.F32;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.names;

/**
 * Typed launches of kernels/adamw8bit.cu: bitsandbytes' blockwise 8-bit AdamW step over a flat group, each thread
 * block stepping quantization blocks in a grid-stride loop (at most enough thread blocks to fill the GPU). The two dynamic maps (signed, then unsigned) live in a small device buffer this class
 * fills once from {@link DynamicMap}, so the tables have a single source.
 */
public final class Adam8bitKernels {
    /** Parameter and gradient dtypes of the instantiations. */
    private static final List<String> TYPES = List.of("f32", "bf16", "f16");

    /** kernels/adamw8bit.cu: block size, map size, padding codes, and the kernels' parameters. */
    static final KernelSource SOURCE = KernelSource.builder("adamw8bit.cu")
            .define("ADAM8_BLOCK", AdamW8bitKernel.BLOCK)
            .define("ADAM8_CODES", DynamicMap.SIZE)
            .define("ADAM8_PAD_M", AdamW8bitKernel.PAD_CODE_M)
            .define("ADAM8_PAD_V", AdamW8bitKernel.PAD_CODE_V)
            .kernels(names("adamw8bit_%s_%s", TYPES, TYPES),
                    PTR, I32, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, F32, F32, F32, F32, F32, F32, F32, I32, I64)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final Block codes;
    private final long maxGrid;

    public Adam8bitKernels(KernelCompiler compiler, CudaStream stream, CudaContext context, CachingAllocator allocator) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxGrid = (long) context.multiprocessors() * 8; // 8 x 256 threads: a full SM
        float[] signed = DynamicMap.SIGNED.table();
        float[] unsigned = DynamicMap.UNSIGNED.table();
        long bytes = (long) (signed.length + unsigned.length) * Float.BYTES;
        this.codes = allocator.allocate(bytes, MemoryCategory.WORKSPACE);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(bytes, 16);
            MemorySegment.copy(signed, 0, host, ValueLayout.JAVA_FLOAT, 0, signed.length);
            MemorySegment.copy(unsigned, 0, host, ValueLayout.JAVA_FLOAT, (long) signed.length * Float.BYTES, unsigned.length);
            check(CudaDriver.cuMemcpyHtoDAsync_v2(codes.address(), host, bytes, stream.handle()), "cuMemcpyHtoDAsync_v2");
            stream.synchronize(); // before the host buffer goes
        }
    }

    /** The step of {@link AdamW8bitKernel} (operands already checked): fp32 scalars, each derived in double and rounded once. */
    public void adamw8bit(ParameterTable params, Tensor master, Tensor grad, AdamW8bitKernel.State state, AdamWStep step,
                          Tensor gradScale) {
        long blocks = params.layout().numel() / AdamW8bitKernel.BLOCK;
        if (blocks == 0) {
            return;
        }
        int gradScaleF64 = gradScale == null ? 0 : StatTypes.scalarFlag("adamw8bit", "gradScale", gradScale);
        String name = "adamw8bit_" + ElementwiseKernels.floatSuffix("adamw8bit", params.dtype()) + "_"
                + ElementwiseKernels.floatSuffix("adamw8bit", grad.dtype());
        double bc2Sqrt = Math.sqrt(step.biasCorrection2());
        Tensor table = params.current(); // rewritten first when a parameter's storage moved
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(table.address()).i32(params.parameters().size())
                    .pointer(master == null ? 0 : master.address()).pointer(grad.address())
                    .pointer(state.m().address()).pointer(state.v().address())
                    .pointer(state.absmaxM().address()).pointer(state.absmaxV().address())
                    .pointer(codes.address())
                    .pointer(gradScale == null ? 0 : gradScale.address()).i32(gradScaleF64)
                    .f32((float) step.beta1())
                    .f32((float) (1 - step.beta1()))
                    .f32((float) step.beta2())
                    .f32((float) (1 - step.beta2()))
                    .f32((float) (-step.lr() * bc2Sqrt / step.biasCorrection1()))
                    .f32((float) (bc2Sqrt * step.eps()))
                    .f32((float) (1 - step.lr() * step.weightDecay()))
                    .i32(step.weightDecay() > 0 ? 1 : 0)
                    .i64(blocks);
            module.function(name).launch(stream, Math.min(blocks, maxGrid), AdamW8bitKernel.BLOCK, 0, args);
        }
    }
}
