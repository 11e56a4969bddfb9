package dev.jtune.engine.optim;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The host-offloaded AdamW on a GPU: its copies move bytes only, so it equals the same optimizer on the cpu bit for
 * bit (the update is the same host code); it equals the device AdamW within fp32 rounding (optim.cu contracts
 * multiply-adds); its delayed schedule lags one step; and the device allocator holds none of its state.
 */
@Tag("gpu")
class HostOffloadAdamWGpuTest {
    /** Some cut by the buckets below, one larger than a bucket, with alignment gaps. */
    private static final List<long[]> SHAPES = List.of(new long[] {3, 5}, new long[] {300}, new long[] {17}, new long[] {2, 2, 70},
            new long[] {640, 1000});
    private static final AdamW.Config CONFIG = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.01);
    private static final long BUCKET = 100_000;
    private static final Device GPU = Device.cuda(0);

    private static SequencedMap<String, Tensor> params(double[][] values, DType dtype, Device device) {
        return HostOffloadAdamWTest.params(SHAPES, values, dtype, device);
    }

    private static double[][] randomValues(Random rnd, double scale) {
        return HostOffloadAdamWTest.randomValues(SHAPES, rnd, scale);
    }

    private static void step(Optimizer opt, SequencedMap<String, Tensor> params, double[][] grads) {
        HostOffloadAdamWTest.step(opt, params, grads);
    }

    private static HostOffloadAdamW offload(SequencedMap<String, Tensor> params, HostOffloadAdamW.Schedule schedule, long bucket) {
        return HostOffloadAdamW.builder(params, CONFIG).bucketElements(bucket).schedule(schedule).build();
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void equalsTheCpuOffloadBitForBitAndTheDeviceAdamWWithinFp32(DType dtype) {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        CudaBackend.get(0).poisonAllocations(true);
        try (Scope scope = Scope.open("gpu offload")) {
            SequencedMap<String, Tensor> onGpu = params(init, dtype, GPU);
            SequencedMap<String, Tensor> onGpuOneBucket = params(init, dtype, GPU);
            SequencedMap<String, Tensor> onCpu = params(init, dtype, Device.CPU);
            SequencedMap<String, Tensor> reference = params(init, dtype, GPU);
            AdamW device = new AdamW(new ArrayList<>(reference.values()), CONFIG);
            try (HostOffloadAdamW gpu = offload(onGpu, HostOffloadAdamW.Schedule.IN_STEP, BUCKET);
                 HostOffloadAdamW gpuWhole = offload(onGpuOneBucket, HostOffloadAdamW.Schedule.IN_STEP, HostOffloadAdamW.DEFAULT_BUCKET_ELEMENTS);
                 HostOffloadAdamW cpu = offload(onCpu, HostOffloadAdamW.Schedule.IN_STEP, BUCKET)) {
                HostOffloadAdamWTest.Scales scales = new HostOffloadAdamWTest.Scales();
                for (int t = 1; t <= 5; t++) {
                    double[][] g = randomValues(rnd, 1.0);
                    scales.observe(device.state(), g);
                    step(device, reference, g);
                    step(gpu, onGpu, g);
                    step(gpuWhole, onGpuOneBucket, g);
                    step(cpu, onCpu, g);
                    scales.observe(device.state(), null);
                    assertEquals(bits(cpu.state()), bits(gpu.state()), "the GPU's offload moves bytes only: step " + t);
                    assertEquals(bits(cpu.state()), bits(gpuWhole.state()), "buckets change nothing: step " + t);
                    for (String name : onCpu.keySet()) {
                        assertArrayEquals(onCpu.get(name).toFloatArray(), onGpu.get(name).toFloatArray(), "weights " + name + ", step " + t);
                        assertArrayEquals(onCpu.get(name).toFloatArray(), onGpuOneBucket.get(name).toFloatArray(), "weights " + name + ", step " + t);
                    }
                    HostOffloadAdamWTest.assertClose(device.state(), gpu.state(), t, scales, "against the device AdamW, step " + t);
                    HostOffloadAdamWTest.assertWeightsClose(reference, onGpu, dtype, t, "against the device AdamW, step " + t);
                }
            }
        } finally {
            CudaBackend.get(0).poisonAllocations(false);
        }
    }

    /**
     * Streamed gradients on the GPU: each contribution is copied while backward goes on and added on the host, which
     * moves bytes only, so over micro-batches that use every parameter twice (sum(p * g) + sum(p * h), accumulated
     * three times a step) it equals the same optimizer on the cpu bit for bit, and no gradient stays on the device.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void streamedGradientsEqualTheCpuBitForBit(DType dtype) {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        CudaBackend.get(0).poisonAllocations(true);
        try (Scope scope = Scope.open("gpu streamed")) {
            SequencedMap<String, Tensor> onGpu = params(init, dtype, GPU);
            SequencedMap<String, Tensor> onCpu = params(init, dtype, Device.CPU);
            try (HostOffloadAdamW gpu = HostOffloadAdamW.builder(onGpu, CONFIG).bucketElements(BUCKET).gradients(HostOffloadAdamW.Gradients.STREAMED).build();
                 HostOffloadAdamW cpu = HostOffloadAdamW.builder(onCpu, CONFIG).bucketElements(BUCKET).gradients(HostOffloadAdamW.Gradients.STREAMED).build()) {
                for (int t = 1; t <= 3; t++) {
                    for (int micro = 0; micro < 3; micro++) {
                        double[][] g = randomValues(rnd, 1.0);
                        double[][] h = randomValues(rnd, 1.0);
                        for (SequencedMap<String, Tensor> params : List.of(onGpu, onCpu)) {
                            try (Scope mb = Scope.open("micro-batch")) {
                                Tensor loss = null;
                                int i = 0;
                                for (Tensor p : params.values()) {
                                    Tensor a = p.mul(Tensor.fromArray(g[i], p.shape(), dtype, p.device())).reshape(-1).sum(0);
                                    Tensor b = p.mul(Tensor.fromArray(h[i], p.shape(), dtype, p.device())).reshape(-1).sum(0);
                                    loss = loss == null ? a.add(b) : loss.add(a.add(b));
                                    i++;
                                }
                                loss.backward();
                            }
                        }
                    }
                    for (Tensor p : onGpu.values()) {
                        assertEquals(null, p.grad(), "no gradient on the device");
                    }
                    try (Scope st = Scope.open("step")) {
                        double n = gpu.clipHeldGradients(1.0).orElseThrow().value();
                        assertEquals(cpu.clipHeldGradients(1.0).orElseThrow().value(), n, "the same norm from the same sums");
                        gpu.step();
                        cpu.step();
                        gpu.zeroGrad();
                        cpu.zeroGrad();
                    }
                    assertEquals(bits(cpu.state()), bits(gpu.state()), "the GPU's streaming moves bytes only: step " + t);
                    for (String name : onCpu.keySet()) {
                        assertArrayEquals(onCpu.get(name).toFloatArray(), onGpu.get(name).toFloatArray(), "weights " + name + ", step " + t);
                    }
                }
            }
        } finally {
            CudaBackend.get(0).poisonAllocations(false);
        }
    }

    @Test
    void theDelayedScheduleLagsOneStepOnTheGpu() {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        try (Scope scope = Scope.open("gpu delayed")) {
            SequencedMap<String, Tensor> a = params(init, DType.BF16, GPU);
            SequencedMap<String, Tensor> b = params(init, DType.BF16, GPU);
            try (HostOffloadAdamW now = offload(a, HostOffloadAdamW.Schedule.IN_STEP, BUCKET);
                 HostOffloadAdamW late = offload(b, HostOffloadAdamW.Schedule.DELAYED, BUCKET)) {
                List<float[]> previous = values(a);
                for (int t = 1; t <= 4; t++) {
                    double[][] g = randomValues(rnd, 1.0);
                    step(now, a, g);
                    step(late, b, g);
                    List<float[]> seen = values(b);
                    for (int k = 0; k < seen.size(); k++) {
                        assertArrayEquals(previous.get(k), seen.get(k), "after step " + t + " the delayed weights are step " + (t - 1) + "'s");
                    }
                    previous = values(a);
                }
                late.flush();
                List<float[]> flushed = values(b);
                for (int k = 0; k < flushed.size(); k++) {
                    assertArrayEquals(previous.get(k), flushed.get(k), "flushed");
                }
            }
        }
    }

    @Test
    void theDeviceAllocatorHoldsNoOptimizerState() {
        CudaBackend gpu = CudaBackend.get(0);
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        try (Scope scope = Scope.open("gpu memory", MemoryCategory.WEIGHTS)) {
            SequencedMap<String, Tensor> p = params(init, DType.BF16, GPU);
            gpu.synchronize();
            MemoryStats before = gpu.memoryStats();
            try (HostOffloadAdamW opt = offload(p, HostOffloadAdamW.Schedule.IN_STEP, BUCKET)) {
                long flat = opt.gradientBuffers().getFirst().layout().numel();
                for (int t = 0; t < 3; t++) {
                    step(opt, p, randomValues(rnd, 1.0));
                }
                gpu.synchronize();
                MemoryStats after = gpu.memoryStats();
                assertEquals(before.allocated(MemoryCategory.OPTIMIZER), after.allocated(MemoryCategory.OPTIMIZER), "no optimizer state on the device");
                assertEquals(before.peak(MemoryCategory.OPTIMIZER), after.peak(MemoryCategory.OPTIMIZER), "not even for a moment");
                assertEquals(before.host().allocated(MemoryCategory.OPTIMIZER) + 8 * flat, after.host().allocated(MemoryCategory.OPTIMIZER),
                        "fp32 moments in pinned host memory");
                assertEquals(before.host().allocated(MemoryCategory.MASTER_WEIGHTS) + 4 * flat, after.host().allocated(MemoryCategory.MASTER_WEIGHTS),
                        "the fp32 master on the host, on its own line");
                for (Tensor t : opt.state().values()) {
                    assertEquals(Placement.HOST_MAPPED, t.placement(), t.describe());
                }
            }
        }
    }

    private static List<float[]> values(SequencedMap<String, Tensor> params) {
        return params.values().stream().map(Tensor::toFloatArray).toList();
    }

    private static Map<String, List<Integer>> bits(Map<String, Tensor> state) {
        Map<String, List<Integer>> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : state.entrySet()) {
            List<Integer> b = new ArrayList<>();
            for (float f : e.getValue().toFloatArray()) {
                b.add(Float.floatToRawIntBits(f));
            }
            out.put(e.getKey(), b);
        }
        return out;
    }
}
