package dev.jtune.engine.cuda;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.Activations;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.engine.ops.CrossEntropy;
import dev.jtune.engine.ops.Embedding;
import dev.jtune.engine.ops.RmsNorm;
import dev.jtune.engine.ops.Rope;
import dev.jtune.engine.ops.Softmax;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.function.Function;

/**
 * Every differentiable op, forward and backward through autograd, on the GPU against the cpu: the same random
 * inputs (cpu F32 as reference), outputs and every input gradient compared, in F32 and BF16. Allocations are
 * poisoned so unwritten elements fail.
 */
@Tag("gpu")
class CudaOpsBackwardParityTest {
    private static final Device GPU = Device.cuda(0);
    private Scope scope;
    private final Random rnd = Seeds.random();

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    @BeforeEach
    void open() {
        scope = Scope.open("parity");
    }

    @AfterEach
    void close() {
        scope.close();
    }

    /** Runs f on cpu F32 and on the GPU in {@code dtype}; compares the output and the gradients of the float inputs. */
    private void compare(String name, Function<Tensor[], Tensor> f, DType dtype, double tol, Tensor... cpuInputs) {
        Tensor[] ref = new Tensor[cpuInputs.length];
        Tensor[] gpu = new Tensor[cpuInputs.length];
        for (int i = 0; i < cpuInputs.length; i++) {
            Tensor c = cpuInputs[i];
            boolean grad = c.dtype().isFloating();
            ref[i] = grad ? c.cast(DType.F32).detach().requiresGrad(true) : c;
            gpu[i] = grad ? c.cast(dtype).to(GPU).detach().requiresGrad(true) : c.to(GPU);
        }
        Tensor outRef = f.apply(ref);
        Tensor outGpu = f.apply(gpu);
        CudaParityTest.assertClose(outRef, outGpu.cast(DType.F32), tol, name + " " + dtype + " forward");
        Tensor seed = Tensor.randn(outRef.shape(), DType.F32, Device.CPU, rnd.nextLong());
        outRef.backward(seed.reshape(outRef.shape().toArray()));
        outGpu.backward(seed.cast(outGpu.dtype()).to(GPU));
        for (int i = 0; i < ref.length; i++) {
            if (ref[i].requiresGrad()) {
                CudaParityTest.assertClose(ref[i].grad(), gpu[i].grad().cast(DType.F32), tol, name + " " + dtype + " gradient of input " + i);
            }
        }
    }

    private Tensor cpu(Shape s) {
        return Tensor.uniform(s, DType.F32, Device.CPU, rnd.nextLong(), -1, 1);
    }

    private Tensor ints(Shape s, int bound) {
        int[] v = new int[(int) s.numel()];
        for (int i = 0; i < v.length; i++) {
            v[i] = rnd.nextInt(bound);
        }
        return Tensor.fromArray(v, s, DType.I32, Device.CPU);
    }

    /**
     * On the GPU too, the residual norm is the unfused add then norm bit for bit, forward and gradients (so the decoder
     * layer, which fuses them when a layer is one checkpoint, trains as the half-layer checkpoints do).
     */
    @Test
    void residualNormIsTheUnfusedAddAndNormBitForBit() {
        for (DType dt : new DType[] {DType.F32, DType.BF16}) {
            for (long d : new long[] {640, 33}) {
                Shape s = Shape.of(2, 9, d);
                Tensor x0 = cpu(s).cast(dt).to(GPU);
                Tensor h0 = cpu(s).cast(dt).to(GPU);
                Tensor w0 = cpu(Shape.of(d)).to(GPU);
                Tensor seed = cpu(s).cast(dt).to(GPU);
                Tensor[][] grads = new Tensor[2][];
                Tensor[][] outs = new Tensor[2][];
                for (int fused = 0; fused < 2; fused++) {
                    Tensor x = x0.detach().requiresGrad(true);
                    Tensor h = h0.detach().requiresGrad(true);
                    Tensor w = w0.detach().requiresGrad(true);
                    Tensor[] o;
                    if (fused == 1) {
                        o = RmsNorm.applyResidual(x, h, w, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT);
                    } else {
                        Tensor sum = x.add(h);
                        o = new Tensor[] {sum, RmsNorm.apply(sum, w, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT)};
                    }
                    // both outputs used, as in the layer: the sum by the next residual add, the norm by the MLP
                    o[0].mul(seed).add(o[1].mul(seed)).cast(DType.F32).sum(2).sum(1).sum(0).backward();
                    outs[fused] = o;
                    grads[fused] = new Tensor[] {x.grad(), h.grad(), w.grad()};
                }
                String what = dt + " d " + d;
                CudaParityTest.assertClose(outs[0][0], outs[1][0], 0, what + " sum");
                CudaParityTest.assertClose(outs[0][1], outs[1][1], 0, what + " norm");
                String[] names = {"x", "h", "weight"};
                for (int i = 0; i < 3; i++) {
                    org.junit.jupiter.api.Assertions.assertArrayEquals(grads[0][i].toDoubleArray(), grads[1][i].toDoubleArray(), 0,
                            what + " gradient of " + names[i]);
                }
            }
        }
    }

    @Test
    void everyOpForwardAndBackward() {
        for (DType dt : new DType[] {DType.F32, DType.BF16}) {
            double tol = dt == DType.F32 ? 1e-4 : 3e-2;
            compare("matmul", t -> t[0].matmul(t[1].transpose(0, 1)), dt, tol, cpu(Shape.of(3, 37, 64)), cpu(Shape.of(48, 64)));
            compare("add/mul broadcast", t -> t[0].add(t[1]).mul(t[0]), dt, tol, cpu(Shape.of(5, 33)), cpu(Shape.of(33)));
            compare("embedding", t -> Embedding.lookup(t[0], t[1]), dt, tol, cpu(Shape.of(50, 24)), ints(Shape.of(2, 40), 50));
            compare("rmsNorm", t -> RmsNorm.apply(t[0], t[1], 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT), dt, tol, cpu(Shape.of(2, 9, 640)), cpu(Shape.of(640)));
            for (long d : new long[] {640, 33}) { // vector and scalar kernels
                compare("rmsNorm(x + h) " + d, t -> {
                    Tensor[] o = RmsNorm.applyResidual(t[0], t[1], t[2], 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT);
                    return o[1].mul(o[0]);
                }, dt, tol, cpu(Shape.of(2, 9, d)), cpu(Shape.of(2, 9, d)), cpu(Shape.of(d)));
                compare("rmsNorm(x + h), the norm alone " + d, t -> RmsNorm.applyResidual(t[0], t[1], t[2], 1e-6, RmsNorm.Scale.WEIGHT)[1],
                        dt, tol, cpu(Shape.of(2, 9, d)), cpu(Shape.of(2, 9, d)), cpu(Shape.of(d)));
            }
            compare("gelu", t -> Activations.gelu(t[0]), dt, tol, cpu(Shape.of(7, 130)));
            compare("geglu", t -> Activations.geglu(t[0], t[1]), dt, tol, cpu(Shape.of(7, 130)), cpu(Shape.of(7, 130)));
            compare("rope", t -> Rope.apply(t[0], t[1], 10_000), dt, tol, cpu(Shape.of(2, 4, 19, 256)), ints(Shape.of(2, 19), 30_000));
            compare("rope of a transposed view", t -> Rope.apply(t[0].transpose(1, 2), t[1], 10_000), dt, tol, cpu(Shape.of(2, 19, 4, 256)),
                    ints(Shape.of(2, 19), 30_000));
            compare("softmax", t -> Softmax.softmax(t[0], 1), dt, tol, cpu(Shape.of(4, 300, 3)));
            compare("logSoftmax", t -> Softmax.logSoftmax(t[0], -1), dt, tol, cpu(Shape.of(4, 3000)));
            Tensor labels = ints(Shape.of(37), 1000);
            compare("crossEntropy", t -> CrossEntropy.mean(t[0], t[1]), dt, tol, cpu(Shape.of(37, 1000)), labels);
            compare("linearCrossEntropy", t -> CrossEntropy.linear(t[0], t[1], t[2], 16), dt, tol,
                    cpu(Shape.of(37, 64)), cpu(Shape.of(1000, 64)), labels);
            for (long window : new long[] {0, 40}) {
                AttentionSpec spec = new AttentionSpec(window, 1.0 / 16, 32);
                compare("attention window " + window, t -> Attention.causal(t[0], t[1], t[2], spec), dt, tol,
                        cpu(Shape.of(1, 4, 100, 256)), cpu(Shape.of(1, 1, 100, 256)), cpu(Shape.of(1, 1, 100, 256)));
            }
            compare("softcap", t -> dev.jtune.engine.ops.Softcap.apply(t[0].scale(30), 10.0), dt, tol, cpu(Shape.of(7, 101)));
            AttentionSpec capped = new AttentionSpec(40, 1.0 / 16, 32, 8.0);
            compare("attention with softcap", t -> Attention.causal(t[0].scale(8), t[1], t[2], capped), dt, tol,
                    cpu(Shape.of(1, 4, 100, 256)), cpu(Shape.of(1, 1, 100, 256)), cpu(Shape.of(1, 1, 100, 256)));
            compare("linearCrossEntropy with softcap", t -> CrossEntropy.linear(t[0].scale(4), t[1], t[2], 16, 0, 5.0), dt, tol,
                    cpu(Shape.of(37, 64)), cpu(Shape.of(1000, 64)), labels);
            long dropSeed = rnd.nextLong();
            compare("dropout", t -> dev.jtune.engine.ops.Dropout.apply(t[0], 0.2, dropSeed), dt, tol, cpu(Shape.of(9, 333)));
            compare("concat+slice", t -> Ops.concat(0, t[0], t[1]).slice(1, 2, 9), dt, tol, cpu(Shape.of(3, 11)), cpu(Shape.of(4, 11)));
        }
    }
}
