package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.fused.AdamW8bitParity;
import dev.jtune.engine.fused.ParameterTable;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.AdamW8bit;
import dev.jtune.engine.optim.FlatLayout;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Random;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kernels/adamw8bit.cu against the cpu reference (double) on the same inputs, step by step: each step starts both
 * from the cpu's state, so a difference is that step's. The GPU computes in fp32, so a requantized code may differ
 * from the reference's by one where the moment lies within fp32 error of a decision midpoint ({@link AdamW8bitParity}
 * says which differences are allowed).
 */
@Tag("gpu")
class CudaAdamW8bitTest {
    private static final Device GPU = Device.cuda(0);
    private static final Device CPU = Device.CPU;

    private final long seed = Seeds.seed();
    private final Random rnd = new Random(seed);

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    private record Side(List<Tensor> params, Tensor master, Tensor grad, AdamW8bitKernel.State state, ParameterTable targets) {
    }

    private static AdamW8bitKernel.State stateOn(AdamW8bitKernel.State s, Device d) {
        return new AdamW8bitKernel.State(s.m().to(d), s.absmaxM().to(d), s.v().to(d), s.absmaxV().to(d));
    }

    private static void copyState(AdamW8bitKernel.State from, AdamW8bitKernel.State to) {
        Ops.copyInto(from.m().to(to.m().device()), to.m());
        Ops.copyInto(from.v().to(to.v().device()), to.v());
        Ops.copyInto(from.absmaxM().to(to.m().device()), to.absmaxM());
        Ops.copyInto(from.absmaxV().to(to.m().device()), to.absmaxV());
    }

    @Test
    void kernelMatchesTheCpuReference() {
        int[][] sizes = {{300, 256, 1000, 5, 4097}, {1 << 20, 77}};
        DType[][] types = {{DType.F32, DType.F32}, {DType.BF16, DType.BF16}, {DType.F16, DType.F16}, {DType.BF16, DType.F32}, {DType.F32, DType.BF16}};
        for (int[] s : sizes) {
            for (DType[] t : types) {
                check(s, t[0], t[1], t[0] == DType.BF16 && s.length > 2 ? 0.25 : 1.0);
            }
        }
    }

    private void check(int[] sizes, DType pt, DType gt, double gradScale) {
        String what = pt + " params, " + gt + " grads, sizes " + Arrays.toString(sizes) + ", scale " + gradScale + " (seed " + seed + ")";
        try (Scope scope = Scope.open("adamw8bit")) {
            SequencedMap<String, Shape> shapes = new LinkedHashMap<>();
            for (int i = 0; i < sizes.length; i++) {
                shapes.put("w" + i, Shape.of(sizes[i]));
            }
            FlatLayout layout = FlatLayout.of(shapes);
            long n = layout.numel();
            List<Tensor> cpuParams = new ArrayList<>();
            for (int size : sizes) {
                cpuParams.add(Tensor.normal(Shape.of(size), pt, CPU, rnd.nextLong(), 0, 0.5));
            }
            Tensor cpuMaster = null;
            if (pt != DType.F32) {
                cpuMaster = Tensor.zeros(Shape.of(n), DType.F32, CPU);
                for (int i = 0; i < sizes.length; i++) {
                    Ops.copyInto(cpuParams.get(i), layout.view(cpuMaster, i));
                }
            }
            AdamW8bitKernel.State cpuState = AdamW8bitKernel.State.zeros(n, CPU, Placement.DEVICE);
            List<Tensor> gpuParams = cpuParams.stream().map(p -> p.to(GPU)).toList();
            Side cpu = new Side(cpuParams, cpuMaster, Tensor.zeros(Shape.of(n), gt, CPU), cpuState, new ParameterTable(cpuParams, layout));
            Side gpu = new Side(gpuParams, cpuMaster == null ? null : cpuMaster.to(GPU), Tensor.zeros(Shape.of(n), gt, GPU), stateOn(cpuState, GPU),
                    new ParameterTable(gpuParams, layout));
            Tensor scale = gradScale == 1.0 ? null : Tensor.fromArray(new double[] {gradScale}, Shape.of(1), DType.F32, CPU);
            long mismatches = 0;
            long[] counted = {0};
            for (long step = 1; step <= 4; step++) {
                AdamWStep hp = new AdamWStep(1e-2, 0.9, 0.999, 1e-8, 0.1, step);
                Tensor g = Tensor.normal(Shape.of(n), gt, CPU, rnd.nextLong(), 0, Math.pow(10, -2 * rnd.nextDouble()));
                if (step == 2) { // non-finite gradients: state zeroed, no update
                    Ops.copyInto(Tensor.fromArray(new double[] {Double.NaN, Double.POSITIVE_INFINITY}, Shape.of(2), gt, CPU), g.slice(0, 1, 3));
                }
                Ops.copyInto(g, cpu.grad);
                Ops.copyInto(g.to(GPU), gpu.grad);
                // both start from the cpu's state and weights
                copyState(cpu.state, gpu.state);
                for (int i = 0; i < sizes.length; i++) {
                    Ops.copyInto(cpu.params.get(i).to(GPU), gpu.params.get(i));
                }
                if (cpu.master != null) {
                    Ops.copyInto(cpu.master.to(GPU), gpu.master);
                }
                AdamW8bitParity.Codes before = AdamW8bitParity.Codes.of(cpu.state);
                AdamW8bitKernel.OP.cpu().step(cpu.targets, cpu.master, cpu.grad, cpu.state, hp, scale);
                AdamW8bitKernel.on(gpu.grad).step(gpu.targets, gpu.master, gpu.grad, gpu.state, hp, scale == null ? null : scale.to(GPU));
                String at = what + " step " + step;
                mismatches += AdamW8bitParity.compare(layout, g.toDoubleArray(), scale == null ? 1.0 : (float) gradScale, before,
                        AdamW8bitParity.Codes.of(cpu.state), AdamW8bitParity.Codes.of(gpu.state), counted, at);
                compareWeights(cpu, gpu, layout, at);
            }
            AdamW8bitParity.assertFewMismatches(mismatches, counted[0], what);
        }
    }

    private static void compareWeights(Side cpu, Side gpu, FlatLayout layout, String at) {
        float[] cm = cpu.master == null ? null : cpu.master.toFloatArray();
        float[] gm = gpu.master == null ? null : gpu.master.toFloatArray();
        for (int i = 0; i < layout.entries().size(); i++) {
            FlatLayout.Entry e = layout.entries().get(i);
            double[] cp = cpu.params.get(i).toDoubleArray();
            double[] gp = gpu.params.get(i).toDoubleArray();
            Tensor rounded = gm == null ? null
                    : Tensor.fromArray(Arrays.copyOfRange(gm, (int) e.offset(), (int) e.end()), e.shape(), cpu.params.get(i).dtype(), CPU);
            double[] gpuRounded = rounded == null ? null : rounded.toDoubleArray();
            for (int k = 0; k < cp.length; k++) {
                if (cm == null) {
                    // fp32 update of a weight of ~0.5 by ~1e-2: the last bits of either
                    assertEquals(cp[k], gp[k], 2 * Math.ulp((float) cp[k]) + 1e-7, at + " " + e.name() + "[" + k + "]");
                } else {
                    int f = (int) e.offset() + k;
                    assertEquals(cm[f], gm[f], 2 * Math.ulp(cm[f]) + 1e-7, at + " " + e.name() + " master [" + k + "]");
                    assertEquals(gpuRounded[k], gp[k], 0.0, at + " " + e.name() + "[" + k + "] is the GPU's master rounded once");
                }
            }
        }
    }

    @Test
    void optimizerOnTheGpuFollowsTheCpu() {
        try (Scope scope = Scope.open("optimizer")) {
            AdamW.Config cfg = new AdamW.Config(1e-3, 0.9, 0.999, 1e-8, 0.01);
            int[][] shapes = {{64, 300}, {300}, {100, 70}, {5}};
            SequencedMap<String, Tensor> cpuParams = new LinkedHashMap<>();
            SequencedMap<String, Tensor> gpuParams = new LinkedHashMap<>();
            for (int i = 0; i < shapes.length; i++) {
                long[] dims = Arrays.stream(shapes[i]).asLongStream().toArray();
                Tensor p = Tensor.normal(Shape.of(dims), DType.BF16, CPU, rnd.nextLong(), 0, 0.5);
                cpuParams.put("p" + i, p.copy().requiresGrad(true));
                gpuParams.put("p" + i, p.to(GPU).requiresGrad(true));
            }
            AdamW8bit onCpu = new AdamW8bit(cpuParams, cfg);
            AdamW8bit onGpu = new AdamW8bit(gpuParams, cfg);
            for (int step = 0; step < 3; step++) {
                for (String name : cpuParams.keySet()) {
                    Tensor g = Tensor.normal(cpuParams.get(name).shape(), DType.BF16, CPU, rnd.nextLong(), 0, 1);
                    Ops.copyInto(g, cpuParams.get(name).grad());
                    Ops.copyInto(g.to(GPU), gpuParams.get(name).grad());
                }
                onCpu.step();
                onGpu.step();
                onCpu.zeroGrad();
                onGpu.zeroGrad();
            }
            for (String name : cpuParams.keySet()) {
                CudaParityTest.assertClose(onCpu.state().get(name + ".master"), onGpu.state().get(name + ".master"), 1e-5,
                        name + " master after 3 steps (seed " + seed + ")");
            }
            assertEquals(onCpu.memory(), onGpu.memory());
        }
    }
}
