package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.GradClip;
import dev.jtune.engine.optim.GradientBuffer;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Random;
import java.util.SequencedMap;

import static dev.jtune.engine.cuda.CudaParityTest.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The flat AdamW and clipping on the GPU: one multi-tensor launch per (device, dtype) group gives the bits of the
 * per-tensor kernel followed by the master's copy into the parameter, follows the cpu reference within
 * {@link CudaFusedParityTest#tol}, and clipping over the flat buffers agrees with the list form.
 */
@Tag("gpu")
class CudaFlatOptimTest {
    private static final Device GPU = Device.cuda(0);
    private static final AdamW.Config CONFIG = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.1);
    private final Random rnd = Seeds.random();

    /**
     * Shapes that straddle tiles, a size not a multiple of 256, and one large enough that the grid strides (more tiles
     * than 32 blocks per SM); four dtypes interleaved (four groups).
     */
    private static final List<Shape> SHAPES = List.of(Shape.of(3, 5), Shape.of(256), Shape.of(1), Shape.of(17, 31), Shape.of(257),
            Shape.of(2, 3, 7), Shape.of((1 << 21) + 3), Shape.of(100), Shape.of(640, 3));

    private static final DType[] DTYPES = {DType.BF16, DType.F32, DType.F16, DType.F64};

    private static DType dtypeOf(int i) {
        return DTYPES[i % DTYPES.length];
    }

    /** The same starting values on {@code device} for every call with {@code seed}. */
    private static SequencedMap<String, Tensor> params(long seed, Device device) {
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < SHAPES.size(); i++) {
            out.put("p" + i, Tensor.uniform(SHAPES.get(i), dtypeOf(i), Device.CPU, seed + i, -1, 1).to(device).requiresGrad(true));
        }
        return out;
    }

    private List<Tensor> grads() {
        List<Tensor> out = new ArrayList<>();
        for (int i = 0; i < SHAPES.size(); i++) {
            out.add(Tensor.uniform(SHAPES.get(i), dtypeOf(i), Device.CPU, rnd.nextLong(), -1, 1));
        }
        return out;
    }

    private record PerTensor(Tensor param, Tensor master, Tensor m, Tensor v) {
        static PerTensor of(Tensor p) {
            DType stat = p.dtype() == DType.F64 ? DType.F64 : DType.F32;
            Tensor master = p.dtype() == DType.F32 || p.dtype() == DType.F64 ? null : p.cast(DType.F32);
            return new PerTensor(p, master, Tensor.zeros(p.shape(), stat, p.device()), Tensor.zeros(p.shape(), stat, p.device()));
        }

        void step(Tensor grad, AdamWStep s) {
            Tensor target = master != null ? master : param;
            AdamWKernel.on(target).step(target, grad, m, v, s, null);
            if (master != null) {
                Ops.copyInto(master, param);
            }
        }
    }

    @Test
    void flatStepEqualsThePerTensorStepBitForBitAndFollowsTheCpu() {
        long seed = rnd.nextLong();
        try (Scope s = Scope.open("flat adamw gpu")) {
            SequencedMap<String, Tensor> flat = params(seed, GPU);
            SequencedMap<String, Tensor> cpu = params(seed, Device.CPU);
            List<PerTensor> perTensor = new ArrayList<>();
            for (Tensor p : params(seed, GPU).values()) {
                perTensor.add(PerTensor.of(p.detach()));
            }
            AdamW opt = new AdamW(flat, CONFIG);
            AdamW ref = new AdamW(cpu, CONFIG);
            assertEquals(DTYPES.length, opt.gradientBuffers().size());
            List<Tensor> ps = new ArrayList<>(flat.values());
            List<Tensor> cs = new ArrayList<>(cpu.values());
            for (int step = 1; step <= 4; step++) {
                List<Tensor> gs = grads();
                for (int i = 0; i < ps.size(); i++) {
                    Tensor g = gs.get(i).to(GPU);
                    Ops.copyInto(g, ps.get(i).grad());
                    Ops.copyInto(gs.get(i), cs.get(i).grad());
                    perTensor.get(i).step(g, new AdamWStep(CONFIG.lr(), CONFIG.beta1(), CONFIG.beta2(), CONFIG.eps(), CONFIG.weightDecay(), step));
                }
                opt.step();
                ref.step();
                for (int i = 0; i < ps.size(); i++) {
                    DType t = dtypeOf(i);
                    String at = "p" + i + " " + t + " " + SHAPES.get(i) + " step " + step + " (seed " + seed + ")";
                    assertArrayEquals(perTensor.get(i).param().toByteArray(), ps.get(i).toByteArray(), at + ": flat vs per-tensor on the GPU");
                    assertArrayEquals(perTensor.get(i).m().toByteArray(), opt.state().get("p" + i + ".exp_avg").toByteArray(), at + ": exp_avg");
                    assertArrayEquals(perTensor.get(i).v().toByteArray(), opt.state().get("p" + i + ".exp_avg_sq").toByteArray(), at + ": exp_avg_sq");
                    if (perTensor.get(i).master() != null) {
                        assertArrayEquals(perTensor.get(i).master().toByteArray(), opt.state().get("p" + i + ".master").toByteArray(), at + ": master");
                    }
                    assertClose(cs.get(i), ps.get(i), CudaFusedParityTest.tol(t), at + ": against the cpu");
                    assertClose(ref.state().get("p" + i + ".exp_avg"), opt.state().get("p" + i + ".exp_avg"),
                            CudaFusedParityTest.tol(CudaFusedParityTest.stat(t)), at + ": exp_avg against the cpu");
                }
                opt.zeroGrad();
                ref.zeroGrad();
            }
        }
    }

    @Test
    void flatClippingAgreesWithTheListForm() {
        long seed = rnd.nextLong();
        try (Scope s = Scope.open("flat clip gpu")) {
            SequencedMap<String, Tensor> flat = params(seed, GPU);
            List<Tensor> list = new ArrayList<>(params(seed, GPU).values());
            AdamW opt = new AdamW(flat, CONFIG);
            List<Tensor> ps = new ArrayList<>(flat.values());
            List<Tensor> gs = grads();
            for (int i = 0; i < ps.size(); i++) {
                Tensor g = gs.get(i).to(GPU);
                Ops.copyInto(g, ps.get(i).grad());
                list.get(i).mul(g).reshape(-1).sum(0).backward(); // the list form's gradient is g
            }
            double max = GradClip.norm(list).value() / 3;
            double listNorm = GradClip.clipGradNorm(list, max).value();
            List<GradientBuffer> buffers = opt.gradientBuffers();
            double flatNorm = GradClip.clipFlatGradNorm(buffers, max).value();
            assertEquals(listNorm, flatNorm, 1e-6 * listNorm, "norms (seed " + seed + ")");
            for (int i = 0; i < ps.size(); i++) {
                DType t = dtypeOf(i);
                // the two fp32 sums differ in grouping only: the factors agree to fp32's last place, the products to t's
                assertClose(list.get(i).grad(), ps.get(i).grad(), t == DType.BF16 ? 1e-2 : t == DType.F16 ? 2e-3 : 1e-6,
                        "clipped p" + i + " " + t + " (seed " + seed + ")");
            }
        }
    }
}
