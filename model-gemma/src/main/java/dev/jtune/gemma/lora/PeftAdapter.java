package dev.jtune.gemma.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.io.AtomicFiles;
import dev.jtune.engine.nn.Linear;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import dev.jtune.gemma.safetensors.SafeTensorsWriter;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * peft's adapter format: {@code adapter_config.json} + {@code adapter_model.safetensors} with keys
 * {@code base_model.model.<module>.lora_A.weight} / {@code lora_B.weight}, so HF users load jtune adapters with
 * {@code PeftModel.from_pretrained} and jtune loads theirs.
 */
public final class PeftAdapter {
    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    private static final String PREFIX = "base_model.model.";
    private static final ObjectMapper JSON = new ObjectMapper();

    private PeftAdapter() {
    }

    /** peft's key of a module's A or B weight. */
    public static String key(String module, LoraAdapter.Matrix m) {
        return PREFIX + module + (m == LoraAdapter.Matrix.A ? ".lora_A.weight" : ".lora_B.weight");
    }

    /**
     * The HF class an adapter's base model is, and so where its text model's modules sit: adapters name modules by
     * the path in that class ({@code model.layers.0...} in Gemma3ForCausalLM, {@code model.language_model.layers.0...}
     * in Gemma3ForConditionalGeneration as transformers 4.52 and later build it).
     */
    public enum BaseModel {
        CAUSAL_LM("Gemma3ForCausalLM", "model."),
        CONDITIONAL_GENERATION("Gemma3ForConditionalGeneration", "model.language_model.");

        private final String hfClass;
        private final String textModules;

        BaseModel(String hfClass, String textModules) {
            this.hfClass = hfClass;
            this.textModules = textModules;
        }

        /**
         * The name in this base of a text module named as in {@link Gemma3Model} ({@code model.layers.0.self_attn.q_proj});
         * an image-text model's tower module is named as in {@link Gemma3MultimodalModel} already
         * ({@code model.vision_tower.encoder.layers.0.self_attn.q_proj}: {@code --vision_lora}).
         */
        public String module(String textModule) {
            if (textModule.startsWith(Gemma3MultimodalModel.VISION_TOWER)) {
                if (this != CONDITIONAL_GENERATION) {
                    throw new IllegalArgumentException(textModule + " is a vision tower module: only " + CONDITIONAL_GENERATION.hfClass + " has one");
                }
                return textModule;
            }
            if (!textModule.startsWith("model.")) {
                throw new IllegalArgumentException("not a text module name: " + textModule);
            }
            return textModules + textModule.substring("model.".length());
        }

        /** The base an adapter file was made for, told by its keys: a text module under {@code model.language_model.}. */
        static BaseModel of(SafeTensorsFile file) {
            String marker = PREFIX + CONDITIONAL_GENERATION.textModules;
            return file.names().stream().anyMatch(n -> n.startsWith(marker)) ? CONDITIONAL_GENERATION : CAUSAL_LM;
        }
    }

    /** Writes the adapter directory (both files written atomically). */
    public static void save(Path dir, Map<String, LoraAdapter> adapters, LoraConfig config, String baseModel) {
        save(dir, adapters, config, baseModel, BaseModel.CAUSAL_LM);
    }

    /** {@link #save(Path, Map, LoraConfig, String)} for an adapter of the text model inside {@code base}. */
    public static void save(Path dir, Map<String, LoraAdapter> adapters, LoraConfig config, String baseModel, BaseModel base) {
        try {
            Files.createDirectories(dir);
            SafeTensorsWriter writer = new SafeTensorsWriter().metadata("format", "pt");
            for (LoraAdapter a : adapters.values()) {
                for (LoraAdapter.Matrix m : LoraAdapter.Matrix.values()) {
                    writer.add(key(base.module(a.module()), m), a.matrix(m));
                }
            }
            writer.write(dir.resolve(WEIGHTS_FILE));
            AtomicFiles.write(dir.resolve(CONFIG_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(configJson(adapters, config, baseModel, base)));
        } catch (IOException e) {
            throw new AdapterException("writing the LoRA adapter to " + dir, e);
        }
    }

    /** peft's adapter_config.json for these settings. */
    static ObjectNode configJson(Map<String, LoraAdapter> adapters, LoraConfig config, String baseModel, BaseModel base) {
        ObjectNode c = JSON.createObjectNode();
        c.set("alpha_pattern", JSON.createObjectNode());
        c.putObject("auto_mapping").put("base_model_class", base.hfClass).put("parent_library", "transformers.models.gemma3.modeling_gemma3");
        c.put("base_model_name_or_path", baseModel);
        c.put("bias", "none");
        c.put("fan_in_fan_out", false);
        c.put("inference_mode", true);
        c.put("init_lora_weights", true);
        c.putNull("layers_pattern");
        c.putNull("layers_to_transform");
        if (config.alpha() == Math.rint(config.alpha())) {
            c.put("lora_alpha", (long) config.alpha()); // peft writes an int when alpha is whole
        } else {
            c.put("lora_alpha", config.alpha());
        }
        c.put("lora_dropout", config.dropout());
        c.putNull("modules_to_save");
        c.put("peft_type", "LORA");
        c.put("r", config.rank());
        c.set("rank_pattern", JSON.createObjectNode());
        c.putNull("revision");
        // the modules actually adapted, by their last name component, as peft records target_modules
        TreeSet<String> targets = new TreeSet<>();
        for (String m : adapters.keySet()) {
            targets.add(m.substring(m.lastIndexOf('.') + 1));
        }
        ArrayNode t = c.putArray("target_modules");
        targets.forEach(t::add);
        if (config.numLoraModules() > 0 || base == BaseModel.CONDITIONAL_GENERATION) {
            // peft cannot express "the last N modules" by name suffix: list the exact modules instead. Nor can suffixes
            // keep an image-text model's vision tower out (its self_attn.q_proj, k_proj and v_proj end as the language
            // model's do; peft would add adapters there): Gemma3-Finetune lists exact names too
            ArrayNode exact = JSON.createArrayNode();
            adapters.keySet().forEach(m -> exact.add(base.module(m)));
            c.set("target_modules", exact);
        }
        c.put("task_type", "CAUSAL_LM");
        c.put("use_dora", false);
        c.put("use_rslora", false);
        return c;
    }

    /** A loaded adapter directory: its settings and its adapters (tensors in the current scope, on the device). */
    public record Loaded(LoraConfig config, Map<String, LoraAdapter> adapters) {
    }

    /**
     * Reads a peft LoRA adapter for {@code model} onto its device in {@code dtype} and attaches it; A and B become
     * trainable leaves (training may continue from them).
     */
    public static Loaded load(Path dir, Gemma3Model model, DType dtype) {
        return load(dir, model, dtype, null);
    }

    /** As above; {@code dropout} (nullable) is the state that switches the adapters' dropout on for training. */
    public static Loaded load(Path dir, Gemma3Model model, DType dtype, DropoutState dropout) {
        return load(dir, model, null, dtype, dropout);
    }

    /**
     * Reads a peft LoRA adapter onto an image-text model: its language model's adapters, and those of its vision tower
     * ({@code --vision_lora}), each attached to its module; the adapters are named as {@link Gemma3MultimodalModel#linear}
     * finds them.
     */
    public static Loaded load(Path dir, Gemma3MultimodalModel model, DType dtype) {
        return load(dir, model.text(), model, dtype, null);
    }

    private static Loaded load(Path dir, Gemma3Model model, Gemma3MultimodalModel multimodal, DType dtype, DropoutState dropout) {
        Path configFile = dir.resolve(CONFIG_FILE);
        JsonNode c;
        try {
            c = JSON.readTree(configFile.toFile());
        } catch (IOException e) {
            throw new AdapterException("reading " + configFile, e);
        }
        if (!"LORA".equals(c.path("peft_type").asText())) {
            throw new AdapterException(configFile + ": peft_type is '" + c.path("peft_type").asText() + "', only LORA is supported");
        }
        if (c.path("use_dora").asBoolean(false) || c.path("use_rslora").asBoolean(false)) {
            throw new AdapterException(configFile + ": DoRA and rsLoRA adapters are not supported");
        }
        int r = c.path("r").asInt();
        double alpha = c.path("lora_alpha").asDouble();
        List<String> targets = new ArrayList<>();
        JsonNode tm = c.path("target_modules");
        if (tm.isTextual()) {
            targets.add(tm.asText());
        } else {
            tm.forEach(n -> targets.add(n.asText()));
        }
        LoraConfig config;
        try {
            config = new LoraConfig(r, alpha, c.path("lora_dropout").asDouble(0), targets, List.of(), -1);
        } catch (IllegalArgumentException e) {
            throw new AdapterException(configFile + ": " + e.getMessage(), e);
        }
        Map<String, LoraAdapter> adapters = new LinkedHashMap<>();
        try (SafeTensorsFile file = SafeTensorsFile.open(dir.resolve(WEIGHTS_FILE));
             Scope.Entered cat = Scope.countAs(MemoryCategory.ADAPTERS)) {
            BaseModel base = BaseModel.of(file); // an adapter of an image-text model applies to its language model
            // the modules an adapter may name, by their names in the adapter's base: the tower's (an image-text model
            // loaded whole), then the language model's
            Map<String, String> modules = new LinkedHashMap<>(); // peft's name -> ours
            if (multimodal != null && base == BaseModel.CONDITIONAL_GENERATION) {
                multimodal.modules(Linear.class).keySet().stream().filter(m -> m.startsWith(Gemma3MultimodalModel.VISION_TOWER))
                        .forEach(m -> modules.put(m, m));
            }
            model.linears().keySet().forEach(m -> modules.put(base.module(m), m));
            java.util.function.Function<String, Linear> linear = multimodal != null ? multimodal::linear : model::linear;
            if (tm.isArray()) { // a string is a regular expression in peft: checked through the weights' names below
                checkTargets(configFile, config, modules.keySet());
            }
            checkNames(file, modules.keySet(), model);
            for (Map.Entry<String, String> e : modules.entrySet()) {
                String ka = key(e.getKey(), LoraAdapter.Matrix.A);
                if (!file.contains(ka)) {
                    continue;
                }
                String module = e.getValue();
                Shape w = linear.apply(module).shape();
                Tensor a = file.load(ka, model.device(), file.info(ka).dtype(), Shape.of(r, w.dim(1))).cast(dtype).requiresGrad(true);
                String kb = key(e.getKey(), LoraAdapter.Matrix.B);
                Tensor b = file.load(kb, model.device(), file.info(kb).dtype(), Shape.of(w.dim(0), r)).cast(dtype).requiresGrad(true);
                adapters.put(module, new LoraAdapter(module, a, b, config.scale(), dropout, adapters.size()));
            }
            if (adapters.isEmpty()) {
                throw new AdapterException(dir.resolve(WEIGHTS_FILE) + ": no LoRA weights for any module of this model");
            }
            adapters.forEach((m, a) -> linear.apply(m).attach(a));
        }
        return new Loaded(config, adapters);
    }

    /** Every target module must name a linear module of this model (peft refuses targets it does not find, too). */
    private static void checkTargets(Path configFile, LoraConfig config, java.util.Set<String> baseModules) {
        List<String> modules = List.copyOf(baseModules); // as the adapter's base names them
        List<String> missing = new ArrayList<>();
        for (String t : config.targetModules()) {
            LoraConfig one = new LoraConfig(config.rank(), config.alpha(), 0, List.of(t), List.of(), -1);
            if (modules.stream().noneMatch(one::matches)) {
                missing.add(t);
            }
        }
        if (!missing.isEmpty()) {
            throw new AdapterException(configFile + ": target_modules " + missing + " match no linear module of the base model ("
                    + modules.size() + " modules named " + shortNames(modules) + "): the adapter was made for another model");
        }
    }

    /**
     * Every tensor of the file must be the A or B weight of a linear module of this model, each with its pair: an
     * adapter for more layers, other modules or with full weights (modules_to_save) cannot be applied faithfully.
     */
    private static void checkNames(SafeTensorsFile file, java.util.Set<String> modules, Gemma3Model model) {
        List<String> foreign = new ArrayList<>();
        for (String name : file.names()) {
            String module = null;
            for (String suffix : new String[] {".lora_A.weight", ".lora_B.weight"}) {
                if (name.startsWith(PREFIX) && name.endsWith(suffix)) {
                    module = name.substring(PREFIX.length(), name.length() - suffix.length());
                }
            }
            if (module == null || !modules.contains(module)) {
                foreign.add(name);
            } else if (!file.contains(key(module, LoraAdapter.Matrix.A)) || !file.contains(key(module, LoraAdapter.Matrix.B))) {
                throw new AdapterException(file.path() + ": " + name + " has no " + (name.endsWith(".lora_A.weight") ? "lora_B" : "lora_A")
                        + " partner");
            }
        }
        if (!foreign.isEmpty()) {
            throw new AdapterException(file.path() + ": " + foreign.size() + " tensor(s) are not LoRA weights of a linear module of the base model ("
                    + model.layers().size() + " layers; modules named " + shortNames(model.linears().keySet()) + "), e.g. "
                    + foreign.subList(0, Math.min(3, foreign.size())) + ": the adapter was made for another model");
        }
    }

    private static TreeSet<String> shortNames(java.util.Collection<String> modules) {
        TreeSet<String> names = new TreeSet<>();
        modules.forEach(m -> names.add(m.substring(m.lastIndexOf('.') + 1)));
        return names;
    }
}
