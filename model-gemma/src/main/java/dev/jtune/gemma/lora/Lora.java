package dev.jtune.gemma.lora;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.gemma.model.Gemma3Model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * LoRA on a Gemma 3 model: choosing modules, peft's initialisation (A Kaiming-uniform with a = sqrt(5), i.e.
 * uniform in +-1/sqrt(in); B zeros, so training starts from the base model), and attaching. The adapters'
 * tensors are allocated in the current scope; the base stays frozen (its parameters do not require grad).
 */
public final class Lora {
    private Lora() {
    }

    /**
     * The modules {@code config} selects among the linear modules of {@code model} (a Gemma 3 model, or any module tree:
     * an image-text model's vision tower), by their names in it, in model order (the last numLoraModules when set).
     */
    public static List<String> selectModules(Module model, LoraConfig config) {
        List<String> chosen = new ArrayList<>();
        for (String m : model.modules(Linear.class).keySet()) {
            if (config.matches(m)) {
                chosen.add(m);
            }
        }
        if (config.numLoraModules() > 0 && chosen.size() > config.numLoraModules()) {
            chosen = chosen.subList(chosen.size() - config.numLoraModules(), chosen.size());
        }
        return List.copyOf(chosen);
    }

    /** New adapters with peft's initialisation, attached to the model; returns them by module name. */
    public static Map<String, LoraAdapter> attach(Gemma3Model model, LoraConfig config, DType dtype, long seed) {
        return attach(model, config, dtype, seed, new DropoutState(config.dropout()));
    }

    /** As above, with the dropout state the trainer switches on and reseeds per micro-batch. */
    public static Map<String, LoraAdapter> attach(Gemma3Model model, LoraConfig config, DType dtype, long seed, DropoutState dropout) {
        return attach(model, config, dtype, seed, dropout, dtype);
    }

    /**
     * As above, the low-rank products computed in {@code compute} (see {@link LoraAdapter}: the adapters' dtype is
     * peft's semantics, the base's 16-bit dtype HF Trainer's autocast).
     */
    public static Map<String, LoraAdapter> attach(Gemma3Model model, LoraConfig config, DType dtype, long seed, DropoutState dropout,
                                                  DType compute) {
        return attach(model, selectModules(model, config), config, dtype, seed, dropout, compute, 0);
    }

    /**
     * New adapters with peft's initialisation on {@code modules} of {@code model} (any module tree, named in it),
     * attached; their dropout streams numbered from {@code firstIndex} (adapters of one run need distinct ones).
     */
    public static Map<String, LoraAdapter> attach(Module model, List<String> modules, LoraConfig config, DType dtype, long seed,
                                                  DropoutState dropout, DType compute, int firstIndex) {
        Map<String, LoraAdapter> adapters = new LinkedHashMap<>();
        try (Scope.Entered c = Scope.countAs(MemoryCategory.ADAPTERS)) {
            long s = seed;
            for (String m : modules) {
                Linear linear = model.module(m, Linear.class);
                Parameter weight = linear.weightParameter();
                Device device = weight.isQuantized() ? weight.quantized().device() : weight.tensor().device();
                long out = linear.shape().dim(0);
                long in = linear.shape().dim(1);
                double bound = 1.0 / Math.sqrt(in);
                Tensor a = Tensor.uniform(Shape.of(config.rank(), in), dtype, device, s++, -bound, bound).requiresGrad(true);
                Tensor b = Tensor.zeros(Shape.of(out, config.rank()), dtype, device).requiresGrad(true);
                adapters.put(m, new LoraAdapter(m, a, b, config.scale(), dropout, firstIndex + adapters.size(), compute));
            }
        }
        attach(model, adapters);
        return Collections.unmodifiableMap(adapters);
    }

    /** Attaches existing adapters (e.g. loaded from a PEFT directory) to their modules, replacing any attached there. */
    public static void attach(Module model, Map<String, LoraAdapter> adapters) {
        adapters.forEach((m, a) -> model.module(m, Linear.class).attach(a));
    }

    /** Detaches the adapters of these modules (the model then computes its base alone). */
    public static void detach(Module model, Map<String, LoraAdapter> adapters) {
        adapters.keySet().forEach(m -> model.module(m, Linear.class).detach());
    }

    /** Every trainable tensor of the adapters (A then B per module), for the optimizer. */
    public static List<Tensor> parameters(Map<String, LoraAdapter> adapters) {
        List<Tensor> out = new ArrayList<>();
        for (LoraAdapter a : adapters.values()) {
            out.add(a.a());
            out.add(a.b());
        }
        return out;
    }
}
