package dev.jtune.gemma.lora;

import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
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

    /** The modules {@code config} selects, in model order (the last numLoraModules when set). */
    public static List<String> selectModules(Gemma3Model model, LoraConfig config) {
        List<String> chosen = new ArrayList<>();
        for (String m : model.linears().keySet()) {
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
        Map<String, LoraAdapter> adapters = new LinkedHashMap<>();
        try (Scope.Entered c = Scope.countAs(MemoryCategory.ADAPTERS)) {
            long s = seed;
            for (String m : selectModules(model, config)) {
                Shape w = model.linear(m).shape();
                long out = w.dim(0);
                long in = w.dim(1);
                double bound = 1.0 / Math.sqrt(in);
                Tensor a = Tensor.uniform(Shape.of(config.rank(), in), dtype, model.device(), s++, -bound, bound).requiresGrad(true);
                Tensor b = Tensor.zeros(Shape.of(out, config.rank()), dtype, model.device()).requiresGrad(true);
                adapters.put(m, new LoraAdapter(m, a, b, config.scale(), dropout, adapters.size(), compute));
            }
        }
        attach(model, adapters);
        return Collections.unmodifiableMap(adapters);
    }

    /** Attaches existing adapters (e.g. loaded from a PEFT directory) to their modules, replacing any attached there. */
    public static void attach(Gemma3Model model, Map<String, LoraAdapter> adapters) {
        adapters.forEach((m, a) -> model.linear(m).attach(a));
    }

    /** Detaches the adapters of these modules (the model then computes its base alone). */
    public static void detach(Gemma3Model model, Map<String, LoraAdapter> adapters) {
        adapters.keySet().forEach(m -> model.linear(m).detach());
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
