package dev.jtune.gemma.model;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.dist.ShardedWeights;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.offload.HostWeights;
import dev.jtune.engine.offload.SlottedUnits;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionMask;
import dev.jtune.engine.ops.CrossEntropy;
import dev.jtune.engine.ops.KeptAttention;
import dev.jtune.engine.ops.Softcap;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.safetensors.SafeTensorsModel;
import dev.jtune.gemma.safetensors.TensorInfo;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;
import java.util.function.Consumer;

/**
 * Gemma 3's text model as HF transformers computes it, on the engine: scaled embeddings; per layer an input
 * RMSNorm, grouped-query attention with q/k RMSNorms, RoPE at the layer type's base and a sliding window on
 * sliding layers, a post-attention norm and residual; then a pre-FFN norm, the GeGLU MLP, a post-FFN norm and
 * residual; a final norm; the LM head tied to the embedding.
 *
 * <p>A tree of modules whose parameter names are HF's ({@link Module#namedParameters()}):
 * <pre>
 * model.embed_tokens                    Embedding [vocab, hidden]
 * model.layers.N                        Gemma3DecoderLayer
 *   input_layernorm                     RmsNorm (1 + w) [hidden]
 *   self_attn.{q,k,v,o}_proj            Linear (dense or NF4, optional adapter)
 *   self_attn.{q,k}_norm                RmsNorm [head_dim]
 *   post_attention_layernorm, pre_feedforward_layernorm
 *   mlp.{gate,up,down}_proj             Linear
 *   post_feedforward_layernorm
 * model.norm                            RmsNorm [hidden]
 * </pre>
 * Weights are allocated in the scope current when the model is built (counted as WEIGHTS); the model owns no memory
 * of its own. Its NF4 linears share one dequantization workspace.
 */
public final class Gemma3Model extends Module {
    private final Gemma3Config config;
    private final DType dtype;
    private final Device device;
    private final DequantWorkspace workspace;
    private final Gemma3TextModel model;
    /**
     * The layers' weights kept off the device's whole copies: in host memory (weight offload, {@link HostWeights}) or
     * in the data-parallel ranks' shards (ZeRO stage 3, {@link ShardedWeights}); null while every weight is whole on
     * the device.
     */
    private SlottedUnits offloaded;

    /** The tree at the config's shapes, without values (load or random init sets them). */
    private Gemma3Model(Gemma3Config config, DType dtype, Device device) {
        if (!config.tieWordEmbeddings()) {
            throw new UnsupportedOpException("Gemma 3 without tied embeddings is not supported yet");
        }
        this.config = config;
        this.dtype = dtype;
        this.device = device;
        this.workspace = new DequantWorkspace(dtype, device);
        this.model = child("model", new Gemma3TextModel(config, workspace));
    }

    /**
     * Loads a checkpoint directory (config.json + safetensors, single or sharded) by HF names, converting the
     * weights to {@code dtype} on {@code device}. Missing or mis-shaped tensors are errors naming file and tensor.
     */
    public static Gemma3Model load(Path dir, Device device, DType dtype) {
        return load(dir, device, dtype, Loading.AS_IS);
    }

    /**
     * How {@link #load(Path, Device, DType, Loading)} places the layers: {@code quantization} (null: none) quantizes each
     * layer's linear weights to NF4 as it is loaded ({@link #quantizeLinearWeights}); {@code layers} HOST offloads each
     * layer to pinned host memory once loaded ({@link #offloadLayerWeights()}), so the device never holds more than the
     * embedding and one layer in 16 bits: a model larger than the device loads.
     */
    public record Loading(Nf4Scales quantization, Placement layers) {
        public static final Loading AS_IS = new Loading(null, Placement.DEVICE);

        /** Where the decoder layers' weights live after loading. */
        public enum Placement { DEVICE, HOST }

        public Loading {
            java.util.Objects.requireNonNull(layers, "layers");
        }
    }

    /** {@link #load(Path, Device, DType)}, quantizing and offloading the layers as {@code loading} says, layer by layer. */
    public static Gemma3Model load(Path dir, Device device, DType dtype, Loading loading) {
        Gemma3Model m = new Gemma3Model(Gemma3Config.read(dir), dtype, device);
        HostWeights.Builder offload = loading.layers() == Loading.Placement.HOST ? HostWeights.builder(device) : null;
        try (SafeTensorsModel files = SafeTensorsModel.open(dir)) {
            CheckpointLayout layout = CheckpointLayout.of(files, dir); // multimodal checkpoints nest the text tower
            try (Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
                loadParameters(files, dir, layout, "embed_tokens.", m.model.embedTokens().namedParameters(), device, dtype);
                List<Gemma3DecoderLayer> layers = m.layers();
                for (int i = 0; i < layers.size(); i++) {
                    Gemma3DecoderLayer layer = layers.get(i);
                    loadParameters(files, dir, layout, "layers." + i + ".", layer.namedParameters(), device, dtype);
                    if (loading.quantization() != null) {
                        Linear.quantize(List.copyOf(layer.modules(Linear.class).values()), loading.quantization());
                    }
                    if (offload != null) {
                        offload.add(layer);
                    }
                }
                loadParameters(files, dir, layout, "norm.", m.model.norm().namedParameters(), device, dtype);
            }
        }
        if (offload != null) {
            m.offloaded = offload.build();
        }
        return m;
    }

    private static void loadParameters(SafeTensorsModel files, Path dir, CheckpointLayout layout, String path, Map<String, Parameter> params,
                                       Device device, DType dtype) {
        for (Map.Entry<String, Parameter> e : params.entrySet()) {
            load(files, dir, layout.text(path + e.getKey()), e.getValue(), device, dtype);
        }
    }

    /**
     * Sets {@code p} from the file's tensor {@code name}, converted to {@code dtype} on {@code device}; a missing or
     * mis-shaped tensor is an error naming it (and the file).
     */
    public static void load(SafeTensorsModel files, Path dir, String name, Parameter p, Device device, DType dtype) {
        Shape shape = p.shape();
        if (!files.contains(name)) {
            throw new ShapeException("Gemma 3 checkpoint " + dir + " has no tensor " + name);
        }
        TensorInfo info = files.info(name);
        if (!info.shape().equals(shape)) {
            throw new ShapeException("Gemma 3 checkpoint " + files.fileOf(name) + ": tensor " + name + " has shape "
                    + info.shape() + ", the config needs " + shape);
        }
        p.set(files.loadAs(name, device, dtype));
    }

    /** Random weights at the config's shapes (for benchmarks): linear and embedding N(0, 0.02), norms 0 (scale 1). */
    public static Gemma3Model random(Gemma3Config config, Device device, DType dtype, long seed) {
        Gemma3Model m = new Gemma3Model(config, dtype, device);
        try (Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
            long s = seed;
            for (Parameter p : m.namedParameters().values()) {
                boolean norm = p.shape().rank() == 1;
                p.set(norm ? Tensor.zeros(p.shape(), dtype, device) : Tensor.normal(p.shape(), dtype, device, s++, 0, 0.02));
            }
        }
        return m;
    }

    public Gemma3Config config() {
        return config;
    }

    public DType dtype() {
        return dtype;
    }

    public Device device() {
        return device;
    }

    /** HF's {@code model}: the embedding, the layers and the final norm. */
    public Gemma3TextModel model() {
        return model;
    }

    public List<Gemma3DecoderLayer> layers() {
        return model.layers().asList();
    }

    /** The embedding table [vocab, hidden], also the tied LM head. */
    public Tensor embedding() {
        return model.embedTokens().weight();
    }

    /** The linear projections by HF module name, in model order ("model.layers.0.self_attn.q_proj", ...). */
    public SequencedMap<String, Linear> linears() {
        return modules(Linear.class);
    }

    /** The linear projection of an HF module name ("model.layers.3.mlp.up_proj"). */
    public Linear linear(String module) {
        return module(module, Linear.class);
    }

    /**
     * QLoRA's frozen base: every linear projection's weight is quantized to NF4 (bitsandbytes' semantics, absmax per
     * 64, {@code scales} plain or double-quantized) and its 16-bit copy freed. Each product then dequantizes the weight
     * into one reused workspace of the model's dtype right before the matmul, in forward and in backward. The
     * embedding (also the LM head) and the norms stay in 16 bits. Allocations go to the current scope.
     */
    public void quantizeLinearWeights(Nf4Scales scales) {
        Linear.quantize(List.copyOf(linears().values()), scales);
    }

    /** The linear projections held in NF4, in model order. */
    public List<Linear> quantizedLinears() {
        return linears().values().stream().filter(Linear::isQuantized).toList();
    }

    /** Bytes of the NF4 weights (codes and scales). */
    public long quantizedBytes() {
        long n = 0;
        for (Linear l : quantizedLinears()) {
            n += l.quantizedWeight().storageBytes();
        }
        return n;
    }

    // ------------------------------------------------------------------ weight offload

    /**
     * Weight offload ({@code --offload_param cpu}): every decoder layer's weights (bf16 or NF4, and its norms) move to
     * pinned host memory, and each forward copies a layer to the device, one layer ahead, into one of two slots
     * ({@link HostWeights}). The embedding (also the LM head) and the final norm stay on the device. Call once the
     * weights are final in form (quantized, adapters attached) and before an optimizer takes the parameters; the host
     * copies and the slots are allocated in the current scope. Training must then recompute layers in backward
     * (gradient checkpointing); whoever updates trained layer weights on the host calls {@link #weightsChanged()}.
     */
    public HostWeights offloadLayerWeights() {
        if (offloaded == null) {
            offloaded = HostWeights.offload(layers(), device);
        }
        if (!(offloaded instanceof HostWeights host)) {
            throw new IllegalStateException("Gemma 3: the layer weights are sharded over the ranks (ZeRO stage 3), not offloadable too");
        }
        return host;
    }

    /**
     * ZeRO stage 3 for the layers' frozen weights (QLoRA's NF4 base, frozen dense weights and norms): this rank keeps
     * one part of each layer's, and each forward all-gathers a layer into one of two slots, the next one as it goes
     * ({@link ShardedWeights}); trained weights stay whole (see the overload). Every rank calls it, on the
     * same model, once the weights are final in form (quantized, adapters attached); the parts and slots are allocated
     * in the current scope. Training must then recompute layers in backward (gradient checkpointing). Empty when no
     * layer holds a frozen weight.
     */
    public java.util.Optional<ShardedWeights> shardLayerWeights(Collectives world) {
        return shardLayerWeights(world, java.util.List.of(), dev.jtune.engine.Placement.DEVICE);
    }

    /**
     * As above, and the layers' trained weights that the optimizer's ZeRO stage 3 keeps parts of ({@code trained}, by
     * layer index: {@code optim.ShardedAdamW#trainedRuns}): gathered with their layer, their whole values freed; the
     * frozen parts at {@code partsAt} (the device, or pinned host memory beside weight offload: ZeRO-3's
     * offload_param). Empty when there is nothing to shard.
     */
    public java.util.Optional<ShardedWeights> shardLayerWeights(Collectives world, java.util.List<ShardedWeights.TrainedRun> trained,
                                                                dev.jtune.engine.Placement partsAt) {
        if (offloaded instanceof HostWeights host && !host.isClosed()) {
            host.close(); // loaded into host memory (offload_param): the values stay there, and the shards take them over
            offloaded = null;
        }
        if (offloaded != null) {
            throw new IllegalStateException("Gemma 3: the layer weights are already sharded");
        }
        ShardedWeights sharded = ShardedWeights.shard(layers(), world, device, trained, partsAt);
        offloaded = sharded;
        return java.util.Optional.ofNullable(sharded);
    }

    /** The layer weights kept off the device's whole copies ({@link #offloadLayerWeights()}, {@link #shardLayerWeights}), if any. */
    public java.util.Optional<SlottedUnits> layerWeights() {
        return java.util.Optional.ofNullable(offloaded);
    }

    /** The offloaded layer weights, if {@link #offloadLayerWeights()} was called. */
    public java.util.Optional<HostWeights> offloadedWeights() {
        return offloaded instanceof HostWeights host ? java.util.Optional.of(host) : java.util.Optional.empty();
    }

    /** The values of offloaded weights changed (an optimizer step): layers are copied again when next used. */
    public void weightsChanged() {
        if (offloaded != null && !offloaded.isClosed() && offloaded.holdsTrainedParameters()) {
            offloaded.invalidate();
        }
    }

    /**
     * Stages layer i's weights on the device when they are offloaded (before its forward or recomputation); once the
     * store is closed, computation reads the host values in place.
     */
    private void acquire(int layer) {
        if (offloaded != null && !offloaded.isClosed()) {
            offloaded.acquire(layer);
        }
    }

    // ------------------------------------------------------------------ forward

    /**
     * Options of one forward pass. {@code activations}: where checkpointed inputs wait for backward
     * ({@link ActivationStore#DEVICE}, or a host store for activation offload; the first layer's input, which the
     * embedding's graph may still read, always stays on the device). {@code mlpTiling}: the MLP half whole or over
     * tiles of tokens. {@code keptAttention}: which layers' attention output a checkpoint keeps for its recomputation
     * instead of recomputing it ({@link KeptAttention}; only with checkpointing).
     */
    public record Options(Checkpointing checkpointing, int attentionBlock, ActivationStore activations, MlpTiling mlpTiling,
                          KeptAttention keptAttention) {
        public Options {
            java.util.Objects.requireNonNull(checkpointing, "checkpointing");
            java.util.Objects.requireNonNull(activations, "activations");
            java.util.Objects.requireNonNull(mlpTiling, "mlpTiling");
            java.util.Objects.requireNonNull(keptAttention, "keptAttention");
        }

        public Options(Checkpointing checkpointing, int attentionBlock, ActivationStore activations, MlpTiling mlpTiling) {
            this(checkpointing, attentionBlock, activations, mlpTiling, KeptAttention.NONE);
        }

        public Options(Checkpointing checkpointing, int attentionBlock, ActivationStore activations) {
            this(checkpointing, attentionBlock, activations, MlpTiling.NONE);
        }

        public Options(Checkpointing checkpointing, int attentionBlock) {
            this(checkpointing, attentionBlock, ActivationStore.DEVICE);
        }

        public static Options defaults() {
            return new Options(Checkpointing.NONE, 512);
        }

        public Options withCheckpointing(Checkpointing c) {
            return new Options(c, attentionBlock, activations, mlpTiling, keptAttention);
        }

        public Options withActivations(ActivationStore store) {
            return new Options(checkpointing, attentionBlock, store, mlpTiling, keptAttention);
        }

        public Options withKeptAttention(KeptAttention keep) {
            return new Options(checkpointing, attentionBlock, activations, mlpTiling, keep);
        }

        public Options withMlpTiling(MlpTiling tiling) {
            return new Options(checkpointing, attentionBlock, activations, tiling, keptAttention);
        }
    }

    /**
     * How the MLP half (pre-FFN norm, gate and up projections, GeGLU, down projection, post-FFN norm, residual) runs
     * over a micro-batch's B * T tokens: {@link #NONE}, all at once; else in {@code shards} tiles of tokens, equal but
     * for the last ({@link #AUTO}: as many as {@link #autoShards} says), each tile computed alone in forward and
     * recomputed and differentiated alone in backward (a checkpoint of the MLP half, {@code TiledCheckpoint}), so its
     * [tokens, intermediate] tensors exist for one tile at a time. The loss and every gradient but those of the MLP
     * half's own parameters are exactly the untiled ones; those are summed tile by tile (Arctic's and Unsloth's tiled
     * MLP; axolotl's {@code tiled_mlp}, {@code tiled_mlp_num_shards}).
     */
    public record MlpTiling(int shards) {
        /** The MLP half over all tokens at once (no recomputation of its own). */
        public static final MlpTiling NONE = new MlpTiling(0);
        /** Tiles by {@link #autoShards}. */
        public static final MlpTiling AUTO = new MlpTiling(-1);

        public MlpTiling {
            if (shards < -1) {
                throw new IllegalArgumentException("MLP tiling: " + shards + " shards (0: none, -1: auto, else at least 1)");
            }
        }

        /** {@code n} tiles (at least 1). */
        public static MlpTiling shards(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("MLP tiling: " + n + " shards, at least 1");
            }
            return new MlpTiling(n);
        }

        public boolean tiled() {
            return shards != 0;
        }

        /**
         * {@link #AUTO}'s most bytes of one tile's [tokens, intermediate] activation: the cross-entropy chunk's 256 MiB.
         * Gemma 3 4B at 32,768 bf16 tokens: 3 tiles of 10,923 (213 MiB each; the whole is 640 MiB, and backward held
         * several at once). Arctic's ceil(tokens / hidden) would make 13, each dequantizing the three NF4 weights again
         * in forward, recomputation and backward, for no lower peak (meta: 7.59 GiB either way, attention's half is the
         * peak then; 2 tiles: 7.75).
         */
        public static final long AUTO_TILE_BYTES = 256L << 20;

        /** Rows (tokens) per tile for {@code tokens} rows of {@code config}'s model with activations of {@code dtype}. */
        long tileRows(long tokens, Gemma3Config config, DType dtype) {
            long n = shards > 0 ? shards : autoShards(tokens, config, dtype);
            return Math.max(1, Math.ceilDiv(tokens, n));
        }

        /** The tiles {@link #AUTO} makes of {@code tokens}: as few as keep each within {@link #AUTO_TILE_BYTES}. */
        public static long autoShards(long tokens, Gemma3Config config, DType dtype) {
            long rows = Math.max(1, AUTO_TILE_BYTES / (config.intermediateSize() * dtype.bytesFor(1)));
            return Math.max(1, Math.ceilDiv(tokens, rows));
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
        return hidden(ids, null, options, observer);
    }

    /**
     * {@link #hidden(Tensor, Options, Consumer)} over rows laid out by {@code layout} (null: one sample per row at
     * positions 0..T-1): packed samples, each at its own positions, none attending to another.
     */
    public Tensor hidden(Tensor ids, TokenLayout layout, Options options, Consumer<Tensor> observer) {
        checkIds(ids);
        return hiddenFrom(embed(ids), ids, layout, options, observer);
    }

    private static void checkIds(Tensor ids) {
        if (ids.rank() != 2 || ids.dtype() != DType.I32) {
            throw new ShapeException("Gemma 3 forward: token ids must be I32 [batch, length], got " + ids.describe());
        }
    }

    /**
     * {@link #hidden(Tensor, TokenLayout, Options, Consumer)} from input embeddings {@code x} [B * T, hidden] instead of
     * the ids' (a vision-language model's, with image features in place of its image tokens' rows); {@code ids} I32
     * [B, T] gives the shape the layout is checked against.
     */
    public Tensor hiddenFrom(Tensor x, Tensor ids, TokenLayout layout, Options options, Consumer<Tensor> observer) {
        checkIds(ids);
        long b = ids.dim(0);
        long t = ids.dim(1);
        if (x.rank() != 2 || x.dim(0) != b * t || x.dim(1) != config.hiddenSize()) {
            throw new ShapeException("Gemma 3 forward: input embeddings " + x.shape() + " must be [" + b * t + ", " + config.hiddenSize()
                    + "] for ids " + ids.shape());
        }
        TokenLayout placed = layout == null ? null : layout.on(device, ids);
        Tensor positions = placed == null ? positions(0, t) : placed.positions();
        AttentionMask mask = placed == null ? null : placed.mask();
        if (observer != null) {
            observer.accept(x);
        }
        if (offloaded != null && !offloaded.isClosed() && options.checkpointing() == Checkpointing.NONE && Autograd.isEnabled()) {
            throw new UnsupportedOpException("Gemma 3 forward: with the layer weights " + (offloaded instanceof HostWeights ? "offloaded" : "sharded")
                    + ", training must recompute each "
                    + "layer in backward (a layer's weights leave the device after its forward): turn on gradient checkpointing");
        }
        List<Gemma3DecoderLayer> layers = layers();
        for (int i = 0; i < layers.size(); i++) {
            Gemma3DecoderLayer layer = layers.get(i);
            int index = i;
            Tensor input = x;
            ActivationStore store = i == 0 ? ActivationStore.DEVICE : options.activations(); // a layer's output feeds only the next layer
            MlpTiling tiling = options.mlpTiling();
            x = switch (options.checkpointing()) {
                case NONE -> {
                    acquire(index);
                    yield layer.forward(input, b, t, positions, mask, options);
                }
                // the weights are staged inside each checkpointed function, so its recomputation in backward stages them
                // again (with LAYERS the tiles of a tiled MLP are recomputed within the layer's own recomputation)
                case LAYERS -> Autograd.checkpoint(in -> {
                    acquire(index);
                    return layer.forward(in[0], b, t, positions, mask, options);
                }, store, input);
                case HALVES -> layer.checkpointedMlpHalf(Autograd.checkpoint(in -> {
                    acquire(index);
                    return layer.attentionHalf(in[0], b, t, positions, mask, options);
                }, store, input), tiling, options.activations(), () -> acquire(index));
            };
            if (observer != null && i < layers.size() - 1) {
                observer.accept(x);
            }
        }
        Tensor out = model.norm().forward(x);
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
    public Tensor embed(Tensor ids) {
        return model.embedTokens().forward(ids.to(device)).reshape(ids.numel(), config.hiddenSize()).scale(config.embeddingScale(dtype));
    }

    /** Logits [B * T, vocab] in the model's dtype (small vocabularies and generation; training uses {@link #loss}). */
    public Tensor logits(Tensor hidden) {
        Tensor logits = hidden.matmul(embedding().transpose(0, 1));
        return finalSoftcap() > 0 ? Softcap.apply(logits, finalSoftcap()) : logits;
    }

    /** The final logit cap (0: none). */
    private double finalSoftcap() {
        return config.finalLogitSoftcapping() == null ? 0 : config.finalLogitSoftcapping();
    }

    /** The attention logit cap (0: none). */
    static double attentionSoftcap(Gemma3Config config) {
        return config.attnLogitSoftcapping() == null ? 0 : config.attnLogitSoftcapping();
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
        return loss(ids, labels, null, options, normalizer);
    }

    /**
     * {@link #loss(Tensor, Tensor, Options, double)} over rows laid out by {@code layout} (null: one sample per row):
     * packed rows, whose samples' first labels are ignored (see {@link TokenLayout}), give the sum of the samples'
     * token losses.
     */
    public Tensor loss(Tensor ids, Tensor labels, TokenLayout layout, Options options, double normalizer) {
        if (!labels.shape().equals(ids.shape())) {
            throw new ShapeException("Gemma 3 loss: labels " + labels.shape() + " must match ids " + ids.shape());
        }
        return lossOf(hidden(ids, layout, options, null), ids, labels, normalizer);
    }

    /**
     * The loss of final hidden states {@code hidden} [B * T, hidden] (from {@link #hiddenFrom}) for labels [B, T] shaped
     * as {@code ids}: as {@link #loss(Tensor, Tensor, TokenLayout, Options, double)}.
     */
    public Tensor lossOf(Tensor hidden, Tensor ids, Tensor labels, double normalizer) {
        if (!labels.shape().equals(ids.shape())) {
            throw new ShapeException("Gemma 3 loss: labels " + labels.shape() + " must match ids " + ids.shape());
        }
        long b = ids.dim(0);
        long t = ids.dim(1);
        Tensor h = hidden.reshape(b, t, config.hiddenSize()).slice(1, 0, t - 1).reshape(b * (t - 1), config.hiddenSize());
        Tensor shifted = labels.to(device).slice(1, 1, t).contiguous().reshape(b * (t - 1));
        return CrossEntropy.linear(h, embedding(), shifted, 0, normalizer, finalSoftcap());
    }

    // ------------------------------------------------------------------ generation

    /**
     * Inference with a KV cache: the final-normed hidden states [n, hidden] of {@code ids} (I32 [1, n]) at
     * positions start..start+n-1, appending their keys and values to {@code cache}. A prompt (start 0) runs the
     * blocked causal attention over itself; later calls take one token each and attend to the cache.
     */
    public Tensor hiddenCached(Tensor ids, int start, KvCache cache) {
        if (ids.rank() != 2 || ids.dim(0) != 1 || ids.dtype() != DType.I32) {
            throw new ShapeException("Gemma 3 generation: ids must be I32 [1, n], got " + ids.describe());
        }
        return hiddenCached(embed(ids), null, start, cache);
    }

    /**
     * {@link #hiddenCached(Tensor, int, KvCache)} from input embeddings {@code x} [n, hidden] (an image-text model's,
     * images in place); a prompt's attention follows {@code layout}'s mask (its image tokens' bidirectional groups),
     * null: causal.
     */
    public Tensor hiddenCached(Tensor x, TokenLayout layout, int start, KvCache cache) {
        long n = x.dim(0);
        if (start > 0 && n != 1) {
            throw new UnsupportedOpException("Gemma 3 generation: after the prompt, tokens are fed one at a time (got " + n + ")");
        }
        if (layout != null && start > 0) {
            throw new UnsupportedOpException("Gemma 3 generation: a token layout applies to the prompt only");
        }
        AttentionMask mask = layout == null ? null : layout.to(device).mask();
        Tensor positions = positions(start, n);
        List<Gemma3DecoderLayer> layers = layers();
        for (int i = 0; i < layers.size(); i++) {
            Gemma3DecoderLayer layer = layers.get(i);
            acquire(i);
            Tensor h = layer.inputLayernorm().forward(x);
            Tensor[] qkv = layer.selfAttn().projectQkv(h, 1, n, positions);
            cache.append(i, qkv[1], qkv[2], start);
            Tensor a;
            if (start == 0) {
                a = (mask == null ? Attention.causal(qkv[0], qkv[1], qkv[2], layer.attentionSpec(512))
                        : Attention.causal(qkv[0], qkv[1], qkv[2], layer.attentionSpec(512), mask))
                        .transpose(1, 2).contiguous().reshape(n, (long) config.qDim());
            } else {
                a = cache.attend(i, qkv[0], config.attentionScale(), attentionSoftcap(config));
            }
            x = layer.finish(x, a);
        }
        return model.norm().forward(x);
    }
}
