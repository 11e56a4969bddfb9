package dev.jtune.train.loop;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.optim.ParamGroup;
import dev.jtune.gemma.lora.DropoutState;
import dev.jtune.gemma.lora.Lora;
import dev.jtune.gemma.lora.LoraAdapter;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import dev.jtune.gemma.safetensors.SafeTensorsWriter;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.gemma.vision.ImagePreprocessor;

import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SequencedMap;
import java.util.Set;

/**
 * What is trained: a Gemma 3 model with LoRA adapters on a frozen base, or all its parameters (full fine-tuning); or a
 * Gemma 3 image-text model ({@link Gemma3MultimodalModel}), LoRA on its language model (the tower or projector
 * frozen or trained in full beside it), or the {@link Part}s a run names trained in full. Knows how its trainable weights are saved in
 * HF formats (a peft adapter, or a full checkpoint) and restored, and computes a micro-batch's loss (decoding the
 * batch's images for an image-text model).
 */
public final class Trainable {
    /** The parts of an image-text model (Gemma3-Finetune's {@code --freeze_vision_tower}, {@code --freeze_projector}, {@code --freeze_llm}). */
    public enum Part {
        VISION_TOWER(Gemma3MultimodalModel.VISION_TOWER),
        PROJECTOR(Gemma3MultimodalModel.PROJECTOR),
        LANGUAGE_MODEL(Gemma3MultimodalModel.LANGUAGE_MODEL);

        private final String prefix;

        Part(String prefix) {
            this.prefix = prefix;
        }

        static Part of(String name) {
            for (Part p : values()) {
                if (name.startsWith(p.prefix)) {
                    return p;
                }
            }
            throw new IllegalArgumentException("not a parameter of Gemma3ForConditionalGeneration: " + name);
        }
    }

    private final Gemma3Model model;
    /** The image-text model around {@link #model} (its language model), or null for a text model. */
    private final Gemma3MultimodalModel multimodal;
    /** The image-text model's parts trained in full (beside LoRA: the tower or projector; unused for a text model). */
    private final Set<Part> parts;
    private final ImagePreprocessor images;
    private final Map<String, LoraAdapter> adapters;
    private final LoraConfig lora;
    private final DropoutState dropout;
    private final String baseModel;

    private Trainable(Gemma3Model model, Gemma3MultimodalModel multimodal, Set<Part> parts, Map<String, LoraAdapter> adapters,
                      LoraConfig lora, DropoutState dropout, String baseModel) {
        this.model = model;
        this.multimodal = multimodal;
        this.parts = parts.isEmpty() ? EnumSet.noneOf(Part.class) : EnumSet.copyOf(parts);
        this.images = multimodal == null ? null : new ImagePreprocessor(multimodal.visionConfig());
        this.adapters = adapters;
        this.lora = lora;
        this.dropout = dropout;
        this.baseModel = baseModel;
    }

    private Trainable(Gemma3Model model, Map<String, LoraAdapter> adapters, LoraConfig lora, DropoutState dropout, String baseModel) {
        this(model, null, Set.of(), adapters, lora, dropout, baseModel);
    }

    /**
     * LoRA on a frozen base: new adapters (peft's initialisation, fp32 weights), allocated in the current scope. On a
     * 16-bit base their products run in the base's dtype, as under HF Trainer's {@code --bf16} / {@code --fp16}
     * autocast; on an fp32 base in fp32.
     */
    public static Trainable lora(Gemma3Model model, LoraConfig config, long seed, String baseModel) {
        DropoutState dropout = new DropoutState(config.dropout());
        Map<String, LoraAdapter> adapters = Lora.attach(model, config, DType.F32, seed, dropout, model.dtype());
        return new Trainable(model, adapters, config, dropout, baseModel);
    }

    /** Every parameter of the model is trained (they must be dense: NF4 weights are frozen). */
    public static Trainable full(Gemma3Model model, String baseModel) {
        for (Tensor p : denseParameters(model).values()) {
            p.requiresGrad(true);
        }
        return new Trainable(model, null, null, null, baseModel);
    }

    /** The file beside a LoRA adapter that holds an image-text model's parts trained in full (Gemma3-Finetune's name). */
    public static final String NON_LORA_FILE = "non_lora_state_dict.safetensors";

    /**
     * LoRA on the language model of an image-text model, its vision tower and projector frozen (Gemma3-Finetune without
     * {@code --vision_lora}: both are excluded from LoRA). The adapter names modules as Gemma3ForConditionalGeneration does.
     */
    public static Trainable lora(Gemma3MultimodalModel model, LoraConfig config, long seed, String baseModel) {
        return lora(model, config, seed, baseModel, Set.of());
    }

    /**
     * LoRA on the language model of an image-text model, with the tower and/or projector in {@code trained} trained in
     * full beside the adapters (Gemma3-Finetune's LoRA with {@code --freeze_vision_tower False} or
     * {@code --freeze_projector False}): saved beside the adapter in {@link #NON_LORA_FILE} by their HF names.
     */
    public static Trainable lora(Gemma3MultimodalModel model, LoraConfig config, long seed, String baseModel, Set<Part> trained) {
        return lora(model, config, seed, baseModel, trained, EnumSet.of(Part.LANGUAGE_MODEL));
    }

    /**
     * {@link #lora(Gemma3MultimodalModel, LoraConfig, long, String, Set)} with LoRA on the {@code adapted} parts: the
     * language model, and with Gemma3-Finetune's {@code --vision_lora} the frozen vision tower too (every linear module
     * of its layers: q/k/v/out_proj, fc1, fc2, less the excluded name spans). As the seed's tool selects them, the
     * candidates run in model order, tower first, and {@code numLoraModules} keeps the last N of them all. The
     * language model's adapters start as they would without the tower's (their seeds and dropout streams come first).
     * peft also puts an Embedding LoRA on the tower's position_embedding; that is not built.
     */
    public static Trainable lora(Gemma3MultimodalModel model, LoraConfig config, long seed, String baseModel, Set<Part> trained,
                                 Set<Part> adapted) {
        if (trained.contains(Part.LANGUAGE_MODEL)) {
            throw new IllegalArgumentException("LoRA trains adapters on a frozen language model: it cannot also train it in full");
        }
        if (!adapted.contains(Part.LANGUAGE_MODEL) || adapted.contains(Part.PROJECTOR)) {
            throw new IllegalArgumentException("LoRA adapts the language model, and the vision tower beside it; the projector has no"
                    + " linear module (asked: " + adapted + ")");
        }
        if (adapted.contains(Part.VISION_TOWER) && trained.contains(Part.VISION_TOWER)) {
            throw new IllegalArgumentException("LoRA on the vision tower needs it frozen (--freeze_vision_tower True), as the seed's tool");
        }
        DropoutState dropout = new DropoutState(config.dropout());
        LoraConfig every = new LoraConfig(config.rank(), config.alpha(), config.dropout(),
                java.util.stream.Stream.concat(config.targetModules().stream(), LoraConfig.SIGLIP_LINEAR.stream()).distinct().toList(),
                config.excludeNamespans(), -1);
        List<String> chosen = Lora.selectModules(model, every).stream() // HF's full names, in model order: tower first
                .filter(m -> m.startsWith(Gemma3MultimodalModel.LANGUAGE_MODEL)
                        ? config.matches(m) : adapted.contains(Part.VISION_TOWER) && m.startsWith(Gemma3MultimodalModel.VISION_TOWER))
                .toList();
        if (config.numLoraModules() > 0 && chosen.size() > config.numLoraModules()) {
            chosen = chosen.subList(chosen.size() - config.numLoraModules(), chosen.size());
        }
        List<String> text = chosen.stream().filter(m -> m.startsWith(Gemma3MultimodalModel.LANGUAGE_MODEL))
                .map(m -> "model." + m.substring(Gemma3MultimodalModel.LANGUAGE_MODEL.length())).toList();
        List<String> tower = chosen.stream().filter(m -> m.startsWith(Gemma3MultimodalModel.VISION_TOWER)).toList();
        Map<String, LoraAdapter> adapters = new LinkedHashMap<>(
                Lora.attach(model.text(), text, config, DType.F32, seed, dropout, model.text().dtype(), 0));
        adapters.putAll(Lora.attach(model, tower, config, DType.F32, seed + TOWER_SEEDS, dropout, model.text().dtype(), adapters.size()));
        Trainable t = new Trainable(model.text(), model, trained, java.util.Collections.unmodifiableMap(adapters), config, dropout, baseModel);
        t.trainedParts().values().forEach(p -> p.requiresGrad(true));
        return t;
    }

    /** Where the tower's adapters' seeds start, apart from the language model's. */
    private static final long TOWER_SEEDS = 1_000_003L;

    /** The named parts of an image-text model trained in full, the others frozen (their weights must be dense). */
    public static Trainable full(Gemma3MultimodalModel model, Set<Part> trained, String baseModel) {
        if (trained.isEmpty()) {
            throw new IllegalArgumentException("nothing to train: every part of the image-text model is frozen");
        }
        Trainable t = new Trainable(model.text(), model, trained, null, null, null, baseModel);
        for (Tensor p : t.namedParameters().values()) {
            p.requiresGrad(true);
        }
        return t;
    }

    /**
     * The weights of an image-text model's parts trained in full beside the adapter (Gemma3-Finetune's
     * {@code non_lora_state_dict}, {@link #NON_LORA_FILE}: the vision tower or projector by their in-memory HF
     * names) copied into {@code model}, cast to its dtype; their names, in file order (none: no such file). A name the
     * model does not have, or a shape it does not, is an error naming the file and the tensor.
     */
    public static List<String> applyNonLora(Path dir, Gemma3MultimodalModel model) {
        Path file = dir.resolve(NON_LORA_FILE);
        if (!java.nio.file.Files.isRegularFile(file)) {
            return List.of();
        }
        Map<String, dev.jtune.engine.nn.Parameter> params = model.namedParameters();
        List<String> applied = new java.util.ArrayList<>();
        try (Scope s = Scope.open("non-LoRA weights"); Autograd.GradMode off = Autograd.noGrad(); SafeTensorsFile in = SafeTensorsFile.open(file)) {
            for (String name : in.names()) {
                dev.jtune.engine.nn.Parameter p = params.get(name);
                if (p == null) {
                    throw new RunException(file.toAbsolutePath() + " holds " + name + ", which the image-text model has not"
                            + " (a non_lora_state_dict of another model?)");
                }
                Tensor into = p.tensor();
                Ops.copyInto(in.load(name, into.device(), in.info(name).dtype(), into.shape()).cast(into.dtype()), into);
                applied.add(name);
            }
        }
        return applied;
    }

    /** The language model (of an image-text model: its text tower), which the trainer places, offloads and measures. */
    public Gemma3Model model() {
        return model;
    }

    /** The image-text model, when this trains one. */
    public Optional<Gemma3MultimodalModel> multimodal() {
        return Optional.ofNullable(multimodal);
    }

    /**
     * A micro-batch's loss, divided by {@code normalizer} (0: its label count): the text model's, or, for an
     * image-text model, with the batch's images decoded ({@link ImagePreprocessor}) and their features in place of
     * their soft tokens. A text model refuses a batch with images.
     */
    public Tensor loss(Batcher.Batch batch, Gemma3Model.Options options, double normalizer) {
        if (multimodal == null && !batch.images().isEmpty()) {
            throw new RunException(batch.images().size() + " image(s) in a micro-batch (the first " + batch.images().getFirst()
                    + "), but the model has no vision tower: train image records with a Gemma 3 image-text checkpoint (4B and larger)");
        }
        return loss(batch, batch.images().isEmpty() ? null : images.pixelValues(batch.images(), model.device()), options, normalizer);
    }

    /**
     * {@link #loss(Batcher.Batch, Gemma3Model.Options, double)} with the batch's images already as {@code pixels}
     * [images, C, S, S] (null: none; a text model takes none): the planner's synthetic images on the meta device.
     */
    Tensor loss(Batcher.Batch batch, Tensor pixels, Gemma3Model.Options options, double normalizer) {
        if (multimodal == null) {
            if (pixels != null) {
                throw new IllegalArgumentException("pixels for a text model, which has no vision tower");
            }
            return model.loss(batch.ids(), batch.labels(), batch.layout(), options, normalizer);
        }
        if (batch.layout() != null) {
            throw new IllegalArgumentException("an image-text model computes its own token layout: packed rows are not supported");
        }
        return multimodal.loss(batch.ids(), pixels, batch.labels(), options, normalizer);
    }

    public boolean isLora() {
        return adapters != null;
    }

    public List<Tensor> parameters() {
        return List.copyOf(namedParameters().values());
    }

    /**
     * The trained parameters by name, in {@link #parameters()}'s order: HF's names from the module tree (full
     * fine-tuning), or each adapter's two matrices as peft names them in adapter_model.safetensors
     * ({@code base_model.model.<module>.lora_A.weight}, then {@code lora_B}). The optimizer's checkpointed state is
     * named after them.
     */
    public SequencedMap<String, Tensor> namedParameters() {
        if (!isLora()) {
            return multimodal == null ? denseParameters(model) : trainedParts();
        }
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        for (LoraAdapter a : adapters.values()) {
            for (LoraAdapter.Matrix m : LoraAdapter.Matrix.values()) {
                out.put(adapterKey(a, m), a.matrix(m));
            }
        }
        if (multimodal != null) {
            out.putAll(trainedParts()); // the tower or projector trained beside the adapters
        }
        return out;
    }

    /**
     * The adapters' matrices whose products cast them to another dtype (fp32 A and B on a 16-bit base), by peft's
     * names, all of one compute dtype, for their copies made in one launch ({@link dev.jtune.engine.nn.ComputeCopies});
     * empty when none are cast (full fine-tuning, an fp32 base) or the adapters compute in several dtypes.
     */
    public SequencedMap<String, Tensor> castAdapterWeights() {
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        if (!isLora()) {
            return out;
        }
        DType compute = null;
        // every A, then every B: a layer's A's lie one after another (q, k, v; gate, up), so a group's shared down
        // product reads them stacked as a view (LinearGroup.forwardEach)
        for (LoraAdapter.Matrix m : LoraAdapter.Matrix.values()) {
            for (LoraAdapter a : adapters.values()) {
                Tensor w = a.matrix(m);
                if (w.dtype() == a.compute()) {
                    continue;
                }
                if ((compute != null && compute != a.compute()) || w.dtype() != DType.F32 || !w.isContiguous()) {
                    return new LinkedHashMap<>();
                }
                compute = a.compute();
                out.put(adapterKey(a, m), w);
            }
        }
        return out;
    }

    /** The dtype the adapters' products run in (the base's, on a 16-bit base). */
    public DType adapterComputeDtype() {
        return adapters.isEmpty() ? model.dtype() : adapters.values().iterator().next().compute();
    }

    /** The image-text model's parameters in the trained parts, by HF's in-memory names, in model order. */
    private SequencedMap<String, Tensor> trainedParts() {
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        multimodal.namedParameters().forEach((name, p) -> {
            if (parts.contains(Part.of(name))) {
                out.put(name, p.tensor());
            }
        });
        return out;
    }

    private PeftAdapter.BaseModel peftBase() {
        return multimodal == null ? PeftAdapter.BaseModel.CAUSAL_LM : PeftAdapter.BaseModel.CONDITIONAL_GENERATION;
    }

    /** peft's key of an adapter's A or B weight, its module named as in this run's base class. */
    private String adapterKey(LoraAdapter a, LoraAdapter.Matrix m) {
        return PeftAdapter.key(peftBase().module(a.module()), m);
    }

    /**
     * Each trained parameter's optimizer group, as Gemma3-Finetune's trainer forms them (its {@code create_optimizer}):
     * a parameter of a LayerNorm (the SigLIP tower's) or whose name contains "bias" without weight decay (the seed
     * excludes torch's LayerNorm layers only, so Gemma's RMSNorm weights are decayed, as there); a name containing a
     * {@link TrainerConfig.GroupLearningRate}'s part at that rate, scheduled alike (the first rule that matches).
     */
    public ParamGroup.Assignment paramGroups(TrainerConfig config) {
        dev.jtune.engine.nn.Module root = multimodal != null ? multimodal : model;
        Set<String> layerNorms = root.modules(dev.jtune.engine.nn.LayerNorm.class).keySet();
        Map<String, ParamGroup> groups = new java.util.HashMap<>();
        for (String name : namedParameters().keySet()) {
            int dot = name.lastIndexOf('.');
            boolean decay = !name.contains("bias") && !(dot > 0 && layerNorms.contains(name.substring(0, dot)));
            String label = "default";
            double scale = 1;
            for (TrainerConfig.GroupLearningRate r : config.groupLearningRates()) {
                if (name.contains(r.nameContains())) {
                    label = r.nameContains();
                    scale = r.learningRate() == config.learningRate() ? 1 : r.learningRate() / config.learningRate();
                    break;
                }
            }
            groups.put(name, new ParamGroup(decay ? label : label + ", no decay", scale, decay));
        }
        return name -> groups.getOrDefault(name, ParamGroup.DEFAULT);
    }

    public long parameterCount() {
        long n = 0;
        for (Tensor p : parameters()) {
            n += p.numel();
        }
        return n;
    }

    /** Switches dropout on for the micro-batch with this seed (LoRA), or off. */
    public void train(long microBatchSeed) {
        if (dropout != null) {
            dropout.train(microBatchSeed);
        }
    }

    public void eval() {
        if (dropout != null) {
            dropout.eval();
        }
    }

    /** Writes the trained weights in HF's format: a peft adapter directory, or a full checkpoint. */
    public void save(Path dir) {
        if (isLora()) {
            PeftAdapter.save(dir, adapters, lora, baseModel, peftBase());
            if (!parts.isEmpty()) {
                SafeTensorsWriter writer = new SafeTensorsWriter().metadata("format", "pt");
                trainedParts().forEach(writer::add);
                writer.write(dir.resolve(NON_LORA_FILE));
            }
        } else if (multimodal != null) {
            multimodal.export(dir, LoraMerge.DEFAULT_SHARD_BYTES);
        } else {
            LoraMerge.export(model, dir, LoraMerge.DEFAULT_SHARD_BYTES);
        }
    }

    /** Restores weights written by {@link #save} into this model's tensors. */
    public void restore(Path dir) {
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("restore")) {
            if (isLora()) {
                try (SafeTensorsFile file = SafeTensorsFile.open(dir.resolve(PeftAdapter.WEIGHTS_FILE))) {
                    for (LoraAdapter a : adapters.values()) {
                        for (LoraAdapter.Matrix m : LoraAdapter.Matrix.values()) {
                            copy(file, adapterKey(a, m), a.matrix(m));
                        }
                    }
                }
                if (!parts.isEmpty()) { // the tower or projector trained beside the adapters
                    try (SafeTensorsFile file = SafeTensorsFile.open(dir.resolve(NON_LORA_FILE))) {
                        trainedParts().forEach((name, t) -> copy(file, name, t));
                    }
                }
            } else {
                try (var files = dev.jtune.gemma.safetensors.SafeTensorsModel.open(dir)) {
                    for (Map.Entry<String, Tensor> e : namedParameters().entrySet()) {
                        String file = multimodal == null ? e.getKey() : multimodal.fileName(e.getKey());
                        Tensor src = files.load(file, e.getValue().device(), e.getValue().dtype(), e.getValue().shape());
                        Ops.copyInto(src, e.getValue());
                    }
                }
            }
        }
    }

    /**
     * {@code --lora_weight_path}: starts the adapters from a peft adapter directory instead of peft's
     * initialisation. Its rank, alpha and modules must be this run's; what differs is named.
     */
    public void initialiseFrom(Path adapterDir) {
        if (!isLora()) {
            throw new IllegalStateException("initialiseFrom needs LoRA adapters");
        }
        Path configFile = adapterDir.resolve(PeftAdapter.CONFIG_FILE);
        com.fasterxml.jackson.databind.JsonNode c;
        try {
            c = new com.fasterxml.jackson.databind.ObjectMapper().readTree(configFile.toFile());
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("--lora_weight_path: reading " + configFile + ": " + e.getMessage(), e);
        }
        List<String> problems = new java.util.ArrayList<>();
        if (c.path("r").asInt() != lora.rank()) {
            problems.add("rank " + c.path("r").asInt() + " where --lora_rank is " + lora.rank());
        }
        if (c.path("lora_alpha").asDouble() != lora.alpha()) {
            problems.add("alpha " + c.path("lora_alpha").asText() + " where --lora_alpha is " + lora.alpha());
        }
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("initial adapter");
             SafeTensorsFile file = SafeTensorsFile.open(adapterDir.resolve(PeftAdapter.WEIGHTS_FILE))) {
            java.util.Set<String> unused = new java.util.TreeSet<>(file.names());
            for (LoraAdapter a : adapters.values()) {
                String ka = adapterKey(a, LoraAdapter.Matrix.A);
                String kb = adapterKey(a, LoraAdapter.Matrix.B);
                if (!file.contains(ka) || !file.contains(kb)) {
                    problems.add("no weights for " + a.module());
                    continue;
                }
                unused.remove(ka);
                unused.remove(kb);
                if (problems.isEmpty()) {
                    copy(file, ka, a.a());
                    copy(file, kb, a.b());
                }
            }
            if (!unused.isEmpty()) {
                problems.add(unused.size() + " tensors for modules this run does not adapt (first: " + unused.iterator().next() + ")");
            }
        }
        if (!problems.isEmpty()) {
            throw new RunException("--lora_weight_path " + adapterDir + " does not fit this run's LoRA: "
                    + String.join("; ", problems) + " (set --lora_rank, --lora_alpha, --lora_namespan_exclude and --num_lora_modules as it was trained)");
        }
    }

    /** The model's parameters by HF name, in model order; each is its dense tensor (an NF4 one is refused). */
    private static SequencedMap<String, Tensor> denseParameters(Gemma3Model model) {
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        model.namedParameters().forEach((name, p) -> out.put(name, p.tensor()));
        return out;
    }

    private static void copy(SafeTensorsFile file, String name, Tensor into) {
        Tensor src = file.load(name, into.device(), file.info(name).dtype(), into.shape());
        Ops.copyInto(src.cast(into.dtype()), into);
    }
}
