package dev.jtune.engine;

import dev.jtune.engine.ops.Activations;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.engine.ops.CrossEntropy;
import dev.jtune.engine.ops.Embedding;
import dev.jtune.engine.ops.RmsNorm;
import dev.jtune.engine.ops.Rope;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.GradClip;

import java.util.ArrayList;
import java.util.List;

/**
 * Two small models trained end to end by the tests, on any device and dtype: an MLP classifier, and one
 * Gemma-shaped transformer block (embedding, RMSNorm, q/k/v with RoPE, grouped-query sliding-window attention,
 * GeGLU MLP, tied LM head through the chunked linear cross-entropy), optionally checkpointed.
 * Every weight comes from the counter-based generator, so every device starts from the same numbers.
 */
public final class TinyModels {
    private TinyModels() {
    }

    /** Per-step losses of {@code steps} AdamW steps of the MLP on a fixed random batch. */
    public static double[] trainMlp(Device device, DType dtype, int steps) {
        try (Scope model = Scope.open("mlp", MemoryCategory.WEIGHTS)) {
            Tensor w1 = Tensor.normal(Shape.of(32, 16), dtype, device, 11, 0, 0.25).requiresGrad(true);
            Tensor w2 = Tensor.normal(Shape.of(8, 32), dtype, device, 12, 0, 0.25).requiresGrad(true);
            Tensor x = Tensor.randn(Shape.of(24, 16), dtype, device, 13);
            int[] lab = new int[24];
            for (int i = 0; i < lab.length; i++) {
                lab[i] = (i * 5) % 8;
            }
            Tensor labels = Tensor.fromArray(lab, Shape.of(24), DType.I32, device);
            AdamW opt = new AdamW(List.of(w1, w2), new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.0));
            double[] losses = new double[steps];
            for (int s = 0; s < steps; s++) {
                try (Scope step = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
                    Tensor h = Activations.gelu(x.matmul(w1.transpose(0, 1)));
                    Tensor loss = CrossEntropy.mean(h.matmul(w2.transpose(0, 1)), labels);
                    loss.backward();
                    losses[s] = loss.item();
                    opt.step();
                    opt.zeroGrad();
                }
            }
            return losses;
        }
    }

    /** Per-step losses of the transformer block learning to predict a fixed token sequence. */
    public static double[] trainBlock(Device device, DType dtype, int steps, boolean checkpoint) {
        int vocab = 48;
        int hidden = 32;
        int headDim = 16;
        int qHeads = 2;
        int t = 24;
        try (Scope model = Scope.open("block", MemoryCategory.WEIGHTS)) {
            Tensor embed = Tensor.normal(Shape.of(vocab, hidden), dtype, device, 21, 0, 0.5).requiresGrad(true);
            Tensor norm1 = Tensor.normal(Shape.of(hidden), dtype, device, 22, 0, 0.1).requiresGrad(true);
            Tensor wq = Tensor.normal(Shape.of(qHeads * headDim, hidden), dtype, device, 23, 0, 0.2).requiresGrad(true);
            Tensor wk = Tensor.normal(Shape.of(headDim, hidden), dtype, device, 24, 0, 0.2).requiresGrad(true);
            Tensor wv = Tensor.normal(Shape.of(headDim, hidden), dtype, device, 25, 0, 0.2).requiresGrad(true);
            Tensor wo = Tensor.normal(Shape.of(hidden, qHeads * headDim), dtype, device, 26, 0, 0.2).requiresGrad(true);
            Tensor norm2 = Tensor.normal(Shape.of(hidden), dtype, device, 27, 0, 0.1).requiresGrad(true);
            Tensor gate = Tensor.normal(Shape.of(64, hidden), dtype, device, 28, 0, 0.2).requiresGrad(true);
            Tensor up = Tensor.normal(Shape.of(64, hidden), dtype, device, 29, 0, 0.2).requiresGrad(true);
            Tensor down = Tensor.normal(Shape.of(hidden, 64), dtype, device, 30, 0, 0.2).requiresGrad(true);
            Tensor normF = Tensor.normal(Shape.of(hidden), dtype, device, 31, 0, 0.1).requiresGrad(true);
            List<Tensor> params = List.of(embed, norm1, wq, wk, wv, wo, norm2, gate, up, down, normF);
            int[] tokens = new int[t + 1];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = (i * 7 + 3) % vocab;
            }
            int[] input = java.util.Arrays.copyOf(tokens, t);
            int[] target = java.util.Arrays.copyOfRange(tokens, 1, t + 1);
            int[] positions = new int[t];
            for (int i = 0; i < t; i++) {
                positions[i] = i;
            }
            Tensor ids = Tensor.fromArray(input, Shape.of(t), DType.I32, device);
            Tensor labels = Tensor.fromArray(target, Shape.of(t), DType.I32, device);
            Tensor pos = Tensor.fromArray(positions, Shape.of(t), DType.I32, device);
            AdamW opt = new AdamW(params, new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.01));
            java.util.function.Function<Tensor[], Tensor> block = in -> {
                Tensor x = in[0];
                Tensor h = RmsNorm.apply(x, norm1, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT);
                Tensor q = Rope.apply(h.matmul(wq.transpose(0, 1)).reshape(1, t, qHeads, headDim).transpose(1, 2).contiguous(), pos, 10_000);
                Tensor k = Rope.apply(h.matmul(wk.transpose(0, 1)).reshape(1, t, 1, headDim).transpose(1, 2).contiguous(), pos, 10_000);
                Tensor v = h.matmul(wv.transpose(0, 1)).reshape(1, t, 1, headDim).transpose(1, 2).contiguous();
                Tensor a = Attention.causal(q, k, v, new AttentionSpec(8, 1.0 / Math.sqrt(headDim), 7));
                Tensor attn = a.transpose(1, 2).contiguous().reshape(t, qHeads * headDim).matmul(wo.transpose(0, 1));
                Tensor x2 = x.add(attn);
                Tensor m = RmsNorm.apply(x2, norm2, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT);
                Tensor mlp = Activations.geglu(m.matmul(gate.transpose(0, 1)), m.matmul(up.transpose(0, 1))).matmul(down.transpose(0, 1));
                return x2.add(mlp);
            };
            List<Double> losses = new ArrayList<>();
            for (int s = 0; s < steps; s++) {
                try (Scope step = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
                    Tensor x = Embedding.lookup(embed, ids).scale(Math.sqrt(hidden));
                    Tensor y = checkpoint ? Autograd.checkpoint(block, x) : block.apply(new Tensor[] {x});
                    Tensor loss = CrossEntropy.linear(RmsNorm.apply(y, normF, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT), embed, labels, 10);
                    loss.backward();
                    losses.add(loss.item());
                    GradClip.clipGradNorm(params, 1.0);
                    opt.step();
                    opt.zeroGrad();
                }
            }
            return losses.stream().mapToDouble(Double::doubleValue).toArray();
        }
    }
}
