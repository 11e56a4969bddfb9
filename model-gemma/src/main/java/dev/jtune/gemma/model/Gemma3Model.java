package dev.jtune.gemma.model;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.ops.Activations;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.engine.ops.CrossEntropy;
import dev.jtune.engine.ops.Embedding;
import dev.jtune.engine.ops.RmsNorm;
import dev.jtune.engine.ops.Rope;
import dev.jtune.engine.ops.Softcap;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Tensor;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.safetensors.SafeTensorsModel;
import dev.jtune.gemma.safetensors.TensorInfo;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Gemma 3's text model as HF transformers computes it, on the engine: scaled embeddings; per layer an input
 * RMSNorm, grouped-query attention with q/k RMSNorms, RoPE at the layer type's base and a sliding window on
 * sliding layers, a post-attention norm and residual; then a pre-FFN norm, the GeGLU MLP, a post-FFN norm and
 * residual; a final norm; the LM head tied to the embedding. Weights are allocated in the scope current when
 * the model is built (counted as WEIGHTS); the model owns no memory of its own.
 */
public final class Gemma3Model {
    public static final String EMBED = "model.embed_tokens.weight";
    public static final String FINAL_NORM = "model.norm.weight";

    private final Gemma3Config config;
    private final Tensor embed;
    private final List<Gemma3Layer> layers;
    private final Tensor finalNorm;
    private final Map<String, Tensor> parameters;
    private final Map<String, Nf4Tensor> quantized = new LinkedHashMap<>();
    private Tensor dequantWorkspace;
    private final DType dtype;
    private final Device device;
    private final Map<String, Adapter> adapters = new LinkedHashMap<>();

    /**
     * A trainable addition to one frozen linear projection (LoRA): {@code y = x W^T + adapter(x)}. Implemented by
     * the LoRA package; the model only calls it.
     */
    @FunctionalInterface
    public interface Adapter {
        /** The update of the module's output for input x. */
        Tensor apply(Tensor x);

        /**
         * The module's output y (a fresh product, which this may consume) plus the update for x; adapters that can
         * accumulate into y's storage override this.
         */
        default Tensor addTo(Tensor y, Tensor x) {
            return y.add(apply(x));
        }
    }

    private Gemma3Model(Gemma3Config config, Map<String, Tensor> byName) {
        if (!config.tieWordEmbeddings()) {
            throw new UnsupportedOpException("Gemma 3 without tied embeddings is not supported yet");
        }
        this.config = config;
        this.parameters = byName;
        this.embed = byName.get(EMBED);
        this.finalNorm = byName.get(FINAL_NORM);
        List<Gemma3Layer> ls = new ArrayList<>();
        for (int i = 0; i < config.numHiddenLayers(); i++) {
            String[] names = Gemma3Layer.names(i);
            Tensor[] t = new Tensor[names.length];
            for (int j = 0; j < names.length; j++) {
                t[j] = byName.get(names[j]);
            }
            ls.add(Gemma3Layer.of(t));
        }
        this.layers = List.copyOf(ls);
        this.dtype = embed.dtype();
        this.device = embed.device();
    }

    /** Every parameter name with its expected shape, in HF's order. */
    public static Map<String, Shape> parameterShapes(Gemma3Config c) {
        Map<String, Shape> shapes = new LinkedHashMap<>();
        long h = c.hiddenSize();
        long d = c.headDim();
        shapes.put(EMBED, Shape.of(c.vocabSize(), h));
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String[] n = Gemma3Layer.names(i);
            Shape[] s = {Shape.of(h), Shape.of(c.numAttentionHeads() * d, h), Shape.of(c.numKeyValueHeads() * d, h),
                    Shape.of(c.numKeyValueHeads() * d, h), Shape.of(h, c.numAttentionHeads() * d), Shape.of(d), Shape.of(d),
                    Shape.of(h), Shape.of(h), Shape.of(c.intermediateSize(), h), Shape.of(c.intermediateSize(), h),
                    Shape.of(h, c.intermediateSize()), Shape.of(h)};
            for (int j = 0; j < n.length; j++) {
                shapes.put(n[j], s[j]);
            }
        }
        shapes.put(FINAL_NORM, Shape.of(h));
        return shapes;
    }

    /**
     * Loads a checkpoint directory (config.json + safetensors, single or sharded) by HF names, converting the
     * weights to {@code dtype} on {@code device}. Missing or mis-shaped tensors are errors naming file and tensor.
     */
    public static Gemma3Model load(Path dir, Device device, DType dtype) {
        Gemma3Config config = Gemma3Config.read(dir);
        try (SafeTensorsModel files = SafeTensorsModel.open(dir)) {
            String prefix = files.contains(EMBED) ? "" : "language_model."; // multimodal checkpoints nest the text tower
            Map<String, Tensor> byName = new LinkedHashMap<>();
            try (Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
                for (Map.Entry<String, Shape> e : parameterShapes(config).entrySet()) {
                    String name = prefix + e.getKey();
                    if (!files.contains(name)) {
                        throw new ShapeException("Gemma 3 checkpoint " + dir + " has no tensor " + name);
                    }
                    TensorInfo info = files.info(name);
                    if (!info.shape().equals(e.getValue())) {
                        throw new ShapeException("Gemma 3 checkpoint " + files.fileOf(name) + ": tensor " + name + " has shape "
                                + info.shape() + ", the config needs " + e.getValue());
                    }
                    byName.put(e.getKey(), files.loadAs(name, device, dtype));
                }
            }
            return new Gemma3Model(config, byName);
        }
    }

    /** Random weights at the config's shapes (for benchmarks): linear and embedding N(0, 0.02), norms 0 (scale 1). */
    public static Gemma3Model random(Gemma3Config config, Device device, DType dtype, long seed) {
        Map<String, Tensor> byName = new LinkedHashMap<>();
        try (Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
            long s = seed;
            for (Map.Entry<String, Shape> e : parameterShapes(config).entrySet()) {
                boolean norm = e.getValue().rank() == 1;
                byName.put(e.getKey(), norm ? Tensor.zeros(e.getValue(), dtype, device) : Tensor.normal(e.getValue(), dtype, device, s++, 0, 0.02));
            }
        }
        return new Gemma3Model(config, byName);
    }

    public Gemma3Config config() {
        return config;
    }

    /** Dense parameters by HF name, in HF's order (NF4-quantized linear weights are in {@link #quantizedWeights()}). */
    public Map<String, Tensor> parameters() {
        return Collections.unmodifiableMap(parameters);
    }

    /** The linear weights held in NF4, by HF parameter name. */
    public Map<String, Nf4Tensor> quantizedWeights() {
        return Collections.unmodifiableMap(quantized);
    }

    /**
     * QLoRA's frozen base: every linear projection's weight is quantized to NF4 (bitsandbytes' semantics, absmax per
     * 64, optionally double-quantized) and its 16-bit copy freed. Each product then dequantizes the weight into one
     * reused workspace of the model's dtype right before the matmul, in forward and in backward. The embedding (also
     * the LM head) and the norms stay in 16 bits. Allocations go to the current scope.
     */
    public void quantizeLinearWeights(boolean doubleQuant) {
        long largest = 0;
        try (Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
            for (String module : linearModules()) {
                String name = module + ".weight";
                Tensor w = parameters.remove(name);
                if (w == null) {
                    continue; // already quantized
                }
                if (w.requiresGrad()) {
                    throw new UnsupportedOpException("quantize: " + name + " requires grad; NF4 weights are frozen");
                }
                quantized.put(name, Nf4.quantize(w, doubleQuant));
                largest = Math.max(largest, w.numel());
                w.close();
            }
        }
        try (Scope.Entered c = Scope.countAs(MemoryCategory.WORKSPACE)) {
            if (largest > 0 && (dequantWorkspace == null || dequantWorkspace.numel() < largest)) {
                dequantWorkspace = Tensor.empty(Shape.of(largest), dtype, device);
            }
        }
    }

    /** Bytes of the NF4 weights (codes and scales). */
    public long quantizedBytes() {
        long n = 0;
        for (Nf4Tensor q : quantized.values()) {
            n += q.storageBytes();
        }
        return n;
    }

    public List<Gemma3Layer> layers() {
        return layers;
    }

    public Tensor embedding() {
        return embed;
    }

    /** The names of the linear projections, HF's module names in model order ("model.layers.0.self_attn.q_proj", ...). */
    public List<String> linearModules() {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < layers.size(); i++) {
            for (String n : Gemma3Layer.names(i)) {
                if (n.endsWith("_proj.weight")) {
                    names.add(n.substring(0, n.length() - ".weight".length()));
                }
            }
        }
        return names;
    }

    /**
     * The frozen weight [out, in] of a linear module; for an NF4 module, a dequantized copy in the current scope.
     */
    public Tensor linearWeight(String module) {
        Nf4Tensor q = quantized.get(module + ".weight");
        if (q != null) {
            return Nf4.dequantize(q, dtype);
        }
        Tensor w = parameters.get(module + ".weight");
        if (w == null || w.rank() != 2) {
            throw new IllegalArgumentException("Gemma 3 has no linear module '" + module + "'");
        }
        return w;
    }

    /** The shape [out, in] of a linear module's weight (no dequantization). */
    public Shape linearShape(String module) {
        Nf4Tensor q = quantized.get(module + ".weight");
        return q != null ? q.shape() : linearWeight(module).shape();
    }

    /**
     * Replaces an NF4 module by a dense weight (merging LoRA into a 4-bit base produces 16-bit weights, as peft's
     * merge_and_unload does); the weight is adopted as the module's parameter.
     */
    public void replaceLinearWeight(String module, Tensor dense) {
        String name = module + ".weight";
        Nf4Tensor q = quantized.remove(name);
        if (q != null) {
            q.close();
        }
        parameters.put(name, dense);
    }

    /** Attaches (or, with null, removes) the adapter of a linear module. */
    public void adapter(String module, Adapter adapter) {
        linearShape(module); // checks the module exists; linearWeight would dequantize an NF4 weight into the caller's scope
        if (adapter == null) {
            adapters.remove(module);
        } else {
            adapters.put(module, adapter);
        }
    }

    /** y = x W^T (+ the module's adapter); an NF4 weight is dequantized into the workspace first. */
    private Tensor linear(String module, Tensor x, Tensor weight) {
        Nf4Tensor q = quantized.get(module + ".weight");
        Tensor y = q != null ? nf4Linear(q, x) : x.matmul(weight.transpose(0, 1));
        Adapter a = adapters.get(module);
        return a == null ? y : a.addTo(y, x);
    }

    /**
     * x W^T for a frozen NF4 weight: the weight is dequantized into the shared workspace before the forward
     * product and again before the backward one (dX = dY W); nothing of it is saved between them. One workspace
     * serves every layer because all work runs in stream order.
     */
    private Tensor nf4Linear(Nf4Tensor q, Tensor x) {
        Shape shape = q.shape();
        return Autograd.op("nf4 linear", () -> x.matmul(dequantized(q, shape).transpose(0, 1)),
                g -> new Tensor[] {g.matmul(dequantized(q, shape))}, x);
    }

    private Tensor dequantized(Nf4Tensor q, Shape shape) {
        Tensor w = dequantWorkspace.slice(0, 0, shape.numel()).view(shape.toArray());
        Nf4.dequantizeInto(q, w);
        return w;
    }

    private static String module(int layer, String name) {
        return "model.layers." + layer + "." + name;
    }

    public DType dtype() {
        return dtype;
    }

    public Device device() {
        return device;
    }

    // ------------------------------------------------------------------ forward

    /** Options of one forward pass. */
    public record Options(Checkpointing checkpointing, int attentionBlock) {
        public Options {
            java.util.Objects.requireNonNull(checkpointing, "checkpointing");
        }

        public static Options defaults() {
            return new Options(Checkpointing.NONE, 512);
        }

        public Options withCheckpointing(boolean on) {
            return withCheckpointing(on ? Checkpointing.LAYERS : Checkpointing.NONE);
        }

        public Options withCheckpointing(Checkpointing c) {
            return new Options(c, attentionBlock);
        }
    }

    /**
     * What the forward keeps for backward. NONE: everything backward reads. LAYERS: each layer's input, the layer is
     * recomputed in backward. HALVES: the input of each layer's attention half and of its MLP half (twice the
     * kept tensors, each recomputation half as large: the lower peak for long sequences).
     */
    public enum Checkpointing { NONE, LAYERS, HALVES }

    /**
     * Hidden states after the final norm, [B * T, hidden], for token ids I32 [B, T] at positions 0..T-1.
     * {@code observer}, when not null, receives HF's hidden_states list: the scaled embeddings, each layer's output
     * (the last replaced by the final-normed states), each as [B * T, hidden].
     */
    public Tensor hidden(Tensor ids, Options options, Consumer<Tensor> observer) {
        if (ids.rank() != 2 || ids.dtype() != DType.I32) {
            throw new ShapeException("Gemma 3 forward: token ids must be I32 [batch, length], got " + ids.describe());
        }
        long b = ids.dim(0);
        long t = ids.dim(1);
        Tensor positions = positions(0, t);
        Tensor x = embed(ids);
        if (observer != null) {
            observer.accept(x);
        }
        for (int i = 0; i < layers.size(); i++) {
            int layer = i;
            Tensor input = x;
            x = switch (options.checkpointing()) {
                case NONE -> layerForward(layer, input, b, t, positions, options);
                case LAYERS -> Autograd.checkpoint(in -> layerForward(layer, in[0], b, t, positions, options), input);
                case HALVES -> Autograd.checkpoint(in -> mlpHalf(layer, in[0]),
                        Autograd.checkpoint(in -> attentionHalf(layer, in[0], b, t, positions, options), input));
            };
            if (observer != null && i < layers.size() - 1) {
                observer.accept(x);
            }
        }
        Tensor out = RmsNorm.apply(x, finalNorm, config.rmsNormEps(), true);
        if (observer != null) {
            observer.accept(out);
        }
        return out;
    }

    /** Positions start..start+n-1, I32 on the model's device. */
    private Tensor positions(long start, long n) {
        int[] pos = new int[(int) n];
        for (int i = 0; i < n; i++) {
            pos[i] = (int) (start + i);
        }
        return Tensor.fromArray(pos, Shape.of(n), DType.I32, device);
    }

    /** The scaled embeddings of ids [B, T] as rows [B * T, hidden] (HF scales by sqrt(hidden) in the weights' dtype). */
    private Tensor embed(Tensor ids) {
        return Embedding.lookup(embed, ids.to(device)).reshape(ids.numel(), config.hiddenSize()).scale(config.embeddingScale(dtype));
    }

    /** Logits [B * T, vocab] in the model's dtype (small vocabularies and generation; training uses {@link #loss}). */
    public Tensor logits(Tensor hidden) {
        Tensor logits = hidden.matmul(embed.transpose(0, 1));
        return finalSoftcap() > 0 ? Softcap.apply(logits, finalSoftcap()) : logits;
    }

    /** The final logit cap (0: none). */
    private double finalSoftcap() {
        return config.finalLogitSoftcapping() == null ? 0 : config.finalLogitSoftcapping();
    }

    /** The attention logit cap (0: none). */
    double attentionSoftcap() {
        return config.attnLogitSoftcapping() == null ? 0 : config.attnLogitSoftcapping();
    }

    private AttentionSpec attentionSpec(int layer, int block) {
        long window = config.isSliding(layer) ? config.slidingWindow() : 0;
        return new AttentionSpec(window, config.attentionScale(), block, attentionSoftcap());
    }

    /**
     * Mean next-token cross-entropy: position p's logits predict labels[p + 1], labels of -100 are not counted (HF's
     * causal LM loss). Computed by the chunked linear cross-entropy, so the [tokens x vocab] logits never exist.
     */
    public Tensor loss(Tensor ids, Tensor labels, Options options) {
        return loss(ids, labels, options, 0);
    }

    /**
     * The summed next-token loss divided by {@code normalizer} (when > 0; else the batch's own count of labelled
     * tokens): gradient accumulation passes the step's total count so micro-batches weigh by their tokens.
     */
    public Tensor loss(Tensor ids, Tensor labels, Options options, double normalizer) {
        if (!labels.shape().equals(ids.shape())) {
            throw new ShapeException("Gemma 3 loss: labels " + labels.shape() + " must match ids " + ids.shape());
        }
        long b = ids.dim(0);
        long t = ids.dim(1);
        Tensor h = hidden(ids, options, null).reshape(b, t, config.hiddenSize()).slice(1, 0, t - 1).reshape(b * (t - 1), config.hiddenSize());
        Tensor shifted = labels.to(device).slice(1, 1, t).contiguous().reshape(b * (t - 1));
        return CrossEntropy.linear(h, embed, shifted, 0, normalizer, finalSoftcap());
    }

    private Tensor layerForward(int i, Tensor x, long b, long t, Tensor positions, Options options) {
        return mlpHalf(i, attentionHalf(i, x, b, t, positions, options));
    }

    /** x + the attention block's output: input norm, q/k/v, attention, o_proj, post-attention norm. */
    private Tensor attentionHalf(int i, Tensor x, long b, long t, Tensor positions, Options options) {
        Gemma3Layer w = layers.get(i);
        Tensor h = RmsNorm.apply(x, w.inputNorm(), config.rmsNormEps(), true);
        Tensor[] qkv = projectQkv(i, h, b, t, positions);
        Tensor a = Attention.causal(qkv[0], qkv[1], qkv[2], attentionSpec(i, options.attentionBlock()));
        return attentionResidual(i, x, a.transpose(1, 2).contiguous().reshape(b * t, (long) config.qDim()));
    }

    /** q, k, v as [B, H, T, D] after the q/k norms and RoPE, from the normed input h [B * T, hidden]. */
    private Tensor[] projectQkv(int i, Tensor h, long b, long t, Tensor positions) {
        Gemma3Layer w = layers.get(i);
        double eps = config.rmsNormEps();
        int hq = config.numAttentionHeads();
        int hkv = config.numKeyValueHeads();
        int d = config.headDim();
        Tensor q = RmsNorm.apply(linear(module(i, "self_attn.q_proj"), h, w.qProj()).reshape(b, t, hq, d), w.qNorm(), eps, true);
        Tensor k = RmsNorm.apply(linear(module(i, "self_attn.k_proj"), h, w.kProj()).reshape(b, t, hkv, d), w.kNorm(), eps, true);
        Tensor v = linear(module(i, "self_attn.v_proj"), h, w.vProj()).reshape(b, t, hkv, d);
        double base = config.ropeTheta(i);
        double scaling = config.ropeScalingFactor(i); // linear RoPE scaling (8 on the 4B+ models' global layers)
        return new Tensor[] {
                Rope.apply(q.transpose(1, 2).contiguous(), positions, base, scaling),
                Rope.apply(k.transpose(1, 2).contiguous(), positions, base, scaling),
                v.transpose(1, 2).contiguous()};
    }

    /** The rest of a layer after attention: o_proj, post-attention norm, residual, the MLP half. */
    private Tensor finishLayer(int i, Tensor x, Tensor attention) {
        return mlpHalf(i, attentionResidual(i, x, attention));
    }

    /** x + post-attention norm of o_proj(attention). */
    private Tensor attentionResidual(int i, Tensor x, Tensor attention) {
        Gemma3Layer w = layers.get(i);
        Tensor attn = linear(module(i, "self_attn.o_proj"), attention, w.oProj());
        return x.add(RmsNorm.apply(attn, w.postAttentionNorm(), config.rmsNormEps(), true));
    }

    /** x + the MLP block's output: pre-FFN norm, GeGLU MLP, post-FFN norm. */
    private Tensor mlpHalf(int i, Tensor x) {
        Gemma3Layer w = layers.get(i);
        double eps = config.rmsNormEps();
        Tensor m = RmsNorm.apply(x, w.preFeedforwardNorm(), eps, true);
        Tensor act = Activations.geglu(linear(module(i, "mlp.gate_proj"), m, w.gateProj()), linear(module(i, "mlp.up_proj"), m, w.upProj()));
        Tensor mlp = linear(module(i, "mlp.down_proj"), act, w.downProj());
        return x.add(RmsNorm.apply(mlp, w.postFeedforwardNorm(), eps, true));
    }

    // ------------------------------------------------------------------ generation

    /**
     * Inference with a KV cache: the final-normed hidden states [n, hidden] of {@code ids} (I32 [1, n]) at
     * positions start..start+n-1, appending their keys and values to {@code cache}. A prompt (start 0) runs the
     * blocked causal attention over itself; later calls take one token each and attend to the cache.
     */
    public Tensor hiddenCached(Tensor ids, int start, KvCache cache) {
        long n = ids.dim(1);
        if (ids.rank() != 2 || ids.dim(0) != 1 || ids.dtype() != DType.I32) {
            throw new ShapeException("Gemma 3 generation: ids must be I32 [1, n], got " + ids.describe());
        }
        if (start > 0 && n != 1) {
            throw new UnsupportedOpException("Gemma 3 generation: after the prompt, tokens are fed one at a time (got " + n + ")");
        }
        Tensor positions = positions(start, n);
        Tensor x = embed(ids);
        for (int i = 0; i < layers.size(); i++) {
            Tensor h = RmsNorm.apply(x, layers.get(i).inputNorm(), config.rmsNormEps(), true);
            Tensor[] qkv = projectQkv(i, h, 1, n, positions);
            cache.append(i, qkv[1], qkv[2], start);
            Tensor a;
            if (start == 0) {
                a = Attention.causal(qkv[0], qkv[1], qkv[2], attentionSpec(i, 512))
                        .transpose(1, 2).contiguous().reshape(n, (long) config.qDim());
            } else {
                a = cache.attend(i, qkv[0], config.attentionScale(), attentionSoftcap());
            }
            x = finishLayer(i, x, a);
        }
        return RmsNorm.apply(x, finalNorm, config.rmsNormEps(), true);
    }
}
