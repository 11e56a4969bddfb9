package dev.jtune.gemma.model;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.TiledCheckpoint;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.RmsNorm;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionMask;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.engine.ops.RmsNorm.Scale;
import dev.jtune.gemma.config.Gemma3Config;

/**
 * One decoder layer ({@code model.layers.N}): {@code input_layernorm}, {@code self_attn}, {@code post_attention_layernorm},
 * {@code pre_feedforward_layernorm}, {@code mlp}, {@code post_feedforward_layernorm}; the norms are Gemma's (1 + w)
 * RMSNorms [hidden]. Forward: x + post-norm(attention(input-norm(x))), then x + post-norm(mlp(pre-norm(x))).
 */
public final class Gemma3DecoderLayer extends Module {
    private final Gemma3Config config;
    private final int index;
    private final RmsNorm inputLayernorm;
    private final Gemma3Attention selfAttn;
    private final RmsNorm postAttentionLayernorm;
    private final RmsNorm preFeedforwardLayernorm;
    private final Gemma3Mlp mlp;
    private final RmsNorm postFeedforwardLayernorm;

    Gemma3DecoderLayer(Gemma3Config config, int index, DequantWorkspace workspace) {
        this.config = config;
        this.index = index;
        // registered in the order of the old positional record, so parameters (and random init seeds) keep their order
        inputLayernorm = child("input_layernorm", norm(config));
        selfAttn = child("self_attn", new Gemma3Attention(config, index, workspace));
        postAttentionLayernorm = child("post_attention_layernorm", norm(config));
        preFeedforwardLayernorm = child("pre_feedforward_layernorm", norm(config));
        mlp = child("mlp", new Gemma3Mlp(config, workspace));
        postFeedforwardLayernorm = child("post_feedforward_layernorm", norm(config));
    }

    private static RmsNorm norm(Gemma3Config config) {
        return new RmsNorm(config.hiddenSize(), config.rmsNormEps(), Scale.ONE_PLUS_WEIGHT);
    }

    public int index() {
        return index;
    }

    public RmsNorm inputLayernorm() {
        return inputLayernorm;
    }

    public Gemma3Attention selfAttn() {
        return selfAttn;
    }

    public RmsNorm postAttentionLayernorm() {
        return postAttentionLayernorm;
    }

    public RmsNorm preFeedforwardLayernorm() {
        return preFeedforwardLayernorm;
    }

    public Gemma3Mlp mlp() {
        return mlp;
    }

    public RmsNorm postFeedforwardLayernorm() {
        return postFeedforwardLayernorm;
    }

    /** The layer's attention: a window on sliding layers, scale query_pre_attn_scalar^-0.5, the config's logit cap. */
    AttentionSpec attentionSpec(int block) {
        long window = config.isSliding(index) ? config.slidingWindow() : 0;
        return new AttentionSpec(window, config.attentionScale(), block, Gemma3Model.attentionSoftcap(config));
    }

    /** The same with the forward's query block and what checkpoints keep of it. */
    private AttentionSpec attentionSpec(Gemma3Model.Options options) {
        return attentionSpec(options.attentionBlock()).keeping(options.keptAttention());
    }

    /**
     * The whole layer. Untiled, the add after attention and the pre-FFN norm are one op (one pass over the residual
     * stream fewer); a tiled MLP half starts from the sum, as it does when checkpointed alone.
     */
    Tensor forward(Tensor x, long b, long t, Tensor positions, AttentionMask mask, Gemma3Model.Options options) {
        Gemma3Model.MlpTiling tiling = options.mlpTiling();
        if (tiling.tiled()) {
            return mlpHalf(attentionHalf(x, b, t, positions, mask, options), tiling, ActivationStore.DEVICE);
        }
        return finish(x, attention(x, b, t, positions, mask, options));
    }

    /**
     * x + the attention block's output: input norm, q/k/v, attention, o_proj, post-attention norm. RoPE at
     * {@code positions} [T] or [B, T]; {@code mask} (null: none) keeps packed samples apart.
     */
    Tensor attentionHalf(Tensor x, long b, long t, Tensor positions, AttentionMask mask, Gemma3Model.Options options) {
        Tensor attn = selfAttn.oProj().forward(attention(x, b, t, positions, mask, options));
        return x.add(postAttentionLayernorm.forward(attn));
    }

    /** Attention's output rows [B * T, q heads x head dim], before o_proj. */
    private Tensor attention(Tensor x, long b, long t, Tensor positions, AttentionMask mask, Gemma3Model.Options options) {
        Tensor h = inputLayernorm.forward(x);
        Tensor[] qkv = selfAttn.projectQkv(h, b, t, positions);
        Tensor a = Attention.causal(qkv[0], qkv[1], qkv[2], attentionSpec(options), mask);
        // the fused kernels write [B, T, H, D] (a view of it): then this is a view, no copy
        return a.transpose(1, 2).contiguous().reshape(b * t, (long) config.qDim());
    }

    /**
     * The rest of a layer after attention: o_proj, post-attention norm, then the residual add and the pre-FFN norm as
     * one op, then the MLP and its residual add.
     */
    Tensor finish(Tensor x, Tensor attention) {
        Tensor attn = selfAttn.oProj().forward(attention);
        Tensor[] residual = preFeedforwardLayernorm.forwardResidual(x, postAttentionLayernorm.forward(attn));
        return mlpResidual(residual[0], residual[1]);
    }

    /**
     * The MLP half as {@code tiling} says: whole, recorded as usual; or over tiles of tokens ({@link TiledCheckpoint}),
     * a checkpoint of its own whose input {@code store} keeps: each tile is recomputed and differentiated alone.
     */
    Tensor mlpHalf(Tensor x, Gemma3Model.MlpTiling tiling, ActivationStore store) {
        return tiling.tiled() ? TiledCheckpoint.apply(this::mlpHalf, store, x, tiling.tileRows(x.dim(0), config, x.dtype())) : mlpHalf(x);
    }

    /**
     * The MLP half recomputed in backward (half checkpointing): tiled, the tiles are the checkpoint; else one checkpoint.
     * {@code stage} runs before every computation of it, first pass and recomputations (weight offload stages the
     * layer's weights there).
     */
    Tensor checkpointedMlpHalf(Tensor x, Gemma3Model.MlpTiling tiling, ActivationStore store, Runnable stage) {
        java.util.function.UnaryOperator<Tensor> half = in -> {
            stage.run();
            return mlpHalf(in);
        };
        return tiling.tiled() ? TiledCheckpoint.apply(half, store, x, tiling.tileRows(x.dim(0), config, x.dtype()))
                : Autograd.checkpoint(in -> half.apply(in[0]), store, x);
    }

    /** x + the MLP block's output: pre-FFN norm, GeGLU MLP, post-FFN norm (row-wise: each token's row alone). */
    Tensor mlpHalf(Tensor x) {
        return mlpResidual(x, preFeedforwardLayernorm.forward(x));
    }

    /** x + post-FFN norm of the MLP of {@code normed} (x's pre-FFN norm). */
    private Tensor mlpResidual(Tensor x, Tensor normed) {
        return x.add(postFeedforwardLayernorm.forward(mlp.forward(normed)));
    }
}
