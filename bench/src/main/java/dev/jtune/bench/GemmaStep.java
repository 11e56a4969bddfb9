package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.ops.KeptAttention;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.model.Gemma3Model;

import java.util.Locale;

/**
 * One forward + backward of a real Gemma 3 configuration with random weights, timed and with the allocator's peak
 * memory: {@code GemmaStep [config=gemma-3-270m] [tokens=8192] [checkpoint=false|true|half] [steps=3] [mode=full|lora16|qlora16, -fp32 appended: peft's fp32 adapter products] [mlp_tiles=0|auto|N] [kept=none|global|all]}.
 * {@code kept}: which layers' attention a checkpoint keeps (none by default, as the profiles before the twenty-first
 * session ran; the trainer keeps the global layers' by default, and every layer's where the planner has room).
 */
public final class GemmaStep {
    private GemmaStep() {
    }

    public static void main(String[] args) {
        String name = args.length > 0 ? args[0] : "gemma-3-270m";
        int tokens = args.length > 1 ? Integer.parseInt(args[1]) : 8192;
        // true: whole layers; "half": attention and MLP halves
        Gemma3Model.Checkpointing checkpoint = args.length > 2 && args[2].equals("half") ? Gemma3Model.Checkpointing.HALVES
                : args.length > 2 && Boolean.parseBoolean(args[2]) ? Gemma3Model.Checkpointing.LAYERS : Gemma3Model.Checkpointing.NONE;
        int steps = args.length > 3 ? Integer.parseInt(args[3]) : 3;
        String mode = args.length > 4 ? args[4] : "full";
        Gemma3Model.MlpTiling tiling = args.length <= 5 || args[5].equals("0") ? Gemma3Model.MlpTiling.NONE
                : args[5].equals("auto") ? Gemma3Model.MlpTiling.AUTO : Gemma3Model.MlpTiling.shards(Integer.parseInt(args[5]));
        KeptAttention kept = args.length > 6 ? KeptAttention.valueOf(args[6].toUpperCase(Locale.ROOT)) : KeptAttention.NONE;
        Gemma3Config config = Gemma3Config.builtIn(name);
        CudaBackend gpu = CudaBackend.get(0);
        Device d = gpu.device();
        System.out.println("device: " + gpu.description());
        try (Scope weights = Scope.open("weights", MemoryCategory.WEIGHTS)) {
            Gemma3Model model = Gemma3Model.random(config, d, DType.BF16, 1);
            java.util.List<Tensor> trained;
            if (mode.equals("full")) {
                trained = java.util.List.copyOf(model.stateDict().values()); // dense: the parameters themselves
                for (Tensor p : trained) {
                    p.requiresGrad(true);
                }
            } else {
                if (mode.startsWith("qlora")) {
                    model.quantizeLinearWeights(dev.jtune.engine.quant.Nf4Scales.DOUBLE_QUANTIZED);
                    System.out.printf(Locale.ROOT, "NF4 base: %s for %d linear weights%n", MemoryStats.gib(model.quantizedBytes()), model.quantizedLinears().size());
                }
                int rank = Integer.parseInt(mode.replaceAll("-fp32", "").replaceAll("[^0-9]", ""));
                // as the trainer: the products in bf16 (HF Trainer's autocast); "-fp32": peft's fp32 products
                DType compute = mode.endsWith("-fp32") ? DType.F32 : DType.BF16;
                trained = dev.jtune.gemma.lora.Lora.parameters(dev.jtune.gemma.lora.Lora.attach(model,
                        dev.jtune.gemma.lora.LoraConfig.of(rank, 2.0 * rank), DType.F32, 5,
                        new dev.jtune.gemma.lora.DropoutState(0), compute));
            }
            // as the trainer's optimizer does: one flat gradient buffer, each parameter's gradient a view of it (backward
            // accumulates there: LoRA's weight-gradient products write it directly)
            java.util.SequencedMap<String, Tensor> named = new java.util.LinkedHashMap<>();
            for (Tensor p : trained) {
                named.put("p" + named.size(), p);
            }
            dev.jtune.engine.nn.ComputeCopies copies = null;
            if (!named.isEmpty()) {
                dev.jtune.engine.optim.GradientBuffer.attach(named);
                if (named.firstEntry().getValue().dtype() == DType.F32 && !mode.endsWith("-fp32") && !mode.equals("full")) {
                    // and the adapters' bf16 copies made once a step, as the trainer makes them (Residency.computeCopies)
                    copies = dev.jtune.engine.nn.ComputeCopies.of(named, DType.BF16);
                }
            }
            int[] ids = new int[tokens];
            for (int i = 0; i < tokens; i++) {
                ids[i] = (int) ((i * 2654435761L) % config.vocabSize());
            }
            Tensor input = Tensor.fromArray(ids, Shape.of(1, tokens), DType.I32, Device.CPU);
            for (int s = 0; s < steps; s++) {
                gpu.synchronize();
                gpu.allocator().resetPeaks();
                long t0 = System.nanoTime();
                double loss;
                try (Scope step = Scope.open("step", MemoryCategory.ACTIVATIONS);
                     Scope.Entered provided = copies == null ? null : copies.provide()) {
                    Tensor l = model.loss(input, input, Gemma3Model.Options.defaults().withCheckpointing(checkpoint).withMlpTiling(tiling).withKeptAttention(kept));
                    l.backward();
                    loss = l.item();
                }
                Backends.get(d).synchronize();
                double seconds = (System.nanoTime() - t0) / 1e9;
                MemoryStats m = gpu.memoryStats();
                System.out.printf(Locale.ROOT, "%s " + mode + ", %d tokens, checkpointing %s, MLP tiling %s: step %d %.1f ms, %.0f tokens/s, loss %.4f, "
                                + "peak allocated %s (weights %s, gradients %s, backward %s, activations %s), reserved peak %s%n",
                        name, tokens, checkpoint, tiling, s, seconds * 1e3, tokens / seconds, loss, MemoryStats.gib(m.peakAllocated()),
                        MemoryStats.gib(m.peak(MemoryCategory.WEIGHTS)), MemoryStats.gib(m.peak(MemoryCategory.GRADIENTS)),
                        MemoryStats.gib(m.peak(MemoryCategory.BACKWARD)), MemoryStats.gib(m.peak(MemoryCategory.ACTIVATIONS)), MemoryStats.gib(m.peakReserved()));
                for (Tensor p : trained) {
                    p.zeroGrad();
                }
            }
        }
    }
}
