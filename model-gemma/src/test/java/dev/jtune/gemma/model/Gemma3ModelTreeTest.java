package dev.jtune.gemma.model;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.nn.RmsNorm;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.safetensors.SafeTensorsModel;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Gemma 3 as a module tree: HF's names and shapes (checked against HF's own checkpoint), module lookup, accounting. */
class Gemma3ModelTreeTest {
    @Test
    void theTreeHasHfsParameterNamesAndShapes() {
        Gemma3Config config = Gemma3Config.read(Gemma3GoldenTest.fixture("gemma3-tiny"));
        try (Scope scope = Scope.open("tree");
             SafeTensorsModel hf = SafeTensorsModel.open(Gemma3GoldenTest.fixture("gemma3-tiny"))) {
            Gemma3Model model = Gemma3Model.random(config, Device.CPU, DType.F32, 1);
            Map<String, Parameter> params = model.namedParameters();
            assertEquals(new HashSet<>(hf.names()), params.keySet(), "the names of transformers' checkpoint");
            for (Map.Entry<String, Parameter> e : params.entrySet()) {
                assertEquals(hf.info(e.getKey()).shape(), e.getValue().shape(), e.getKey());
            }
            // the order of the former positional record (random init draws its seeds in this order)
            assertEquals(List.of("model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                    "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight",
                    "model.layers.0.self_attn.o_proj.weight", "model.layers.0.self_attn.q_norm.weight", "model.layers.0.self_attn.k_norm.weight",
                    "model.layers.0.post_attention_layernorm.weight", "model.layers.0.pre_feedforward_layernorm.weight",
                    "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
                    "model.layers.0.post_feedforward_layernorm.weight", "model.layers.1.input_layernorm.weight"),
                    List.copyOf(params.keySet()).subList(0, 15));
            assertEquals("model.norm.weight", params.keySet().stream().reduce((a, b) -> b).orElseThrow());

            assertEquals(7 * config.numHiddenLayers(), model.linears().size());
            assertEquals("model.layers.0.self_attn.q_proj", model.linears().firstEntry().getKey());
            assertEquals("model.layers.5.mlp.down_proj", model.linears().lastEntry().getKey());
            assertSame(model.layers().get(3).mlp().upProj(), model.linear("model.layers.3.mlp.up_proj"));
            assertSame(model.layers().get(2).selfAttn().kNorm(), model.module("model.layers.2.self_attn.k_norm", RmsNorm.class));
            assertSame(model.embedding(), model.model().embedTokens().weight());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.linear("model.layers.9.mlp.up_proj"));
            assertTrue(e.getMessage().contains("model.layers.9.mlp.up_proj"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> model.linear("model.layers.3.mlp"), "not a Linear");
        }
    }

    /** Quantizing walks the linears only; the accounting sums their NF4 bytes; the embedding and norms stay dense. */
    @Test
    void quantizingWalksTheLinears() {
        Gemma3Config config = Gemma3Config.read(Gemma3GoldenTest.fixture("gemma3-tiny"));
        try (Scope scope = Scope.open("quantize")) {
            Gemma3Model model = Gemma3Model.random(config, Device.CPU, DType.F32, 1);
            long dense = model.parameterBytes();
            long linearBytes = 0;
            for (Linear l : model.linears().values()) {
                linearBytes += 4 * l.shape().numel();
            }
            model.quantizeLinearWeights(Nf4Scales.FP32);
            assertEquals(42, model.quantizedLinears().size());
            long nf4 = 0;
            for (Linear l : model.linears().values()) {
                nf4 += l.shape().numel() / 2 + 4 * Math.ceilDiv(l.shape().numel(), 64);
            }
            assertEquals(nf4, model.quantizedBytes(), "codes and fp32 absmax of every linear");
            assertEquals(dense - linearBytes + nf4, model.parameterBytes());
            for (Map.Entry<String, Parameter> p : model.namedParameters().entrySet()) {
                assertEquals(p.getKey().endsWith("_proj.weight"), p.getValue().isQuantized(), p.getKey());
            }
        }
    }
}
