package dev.jtune.gemma.vision;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.gemma.safetensors.SafeTensorsModel;
import dev.jtune.gemma.testing.Goldens;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A random image-text model (benchmarks' checkpoints): HF's initial scales, written in transformers 5's layout, read back exactly. */
class Gemma3MultimodalRandomTest {
    @Test
    void aRandomModelExportsAndLoadsBackValueForValue(@TempDir Path tmp) {
        Path fixture = Goldens.fixture("gemma3-mm-tiny");
        try (Scope s = Scope.open("random")) {
            Gemma3MultimodalModel m = Gemma3MultimodalModel.random(fixture, Device.CPU, DType.F32, 3);
            for (Map.Entry<String, Parameter> e : m.namedParameters().entrySet()) {
                double[] v = e.getValue().tensor().toDoubleArray();
                if (e.getKey().endsWith("layer_norm1.weight") || e.getKey().endsWith("post_layernorm.weight")) {
                    assertTrue(java.util.Arrays.stream(v).allMatch(x -> x == 1.0), e.getKey() + ": LayerNorm scales start at 1");
                } else if (e.getKey().endsWith("bias") || e.getKey().endsWith("mm_soft_emb_norm.weight")) {
                    assertTrue(java.util.Arrays.stream(v).allMatch(x -> x == 0.0), e.getKey() + ": biases and Gemma norms (1 + w) start at 0");
                } else if (e.getValue().shape().rank() > 1) {
                    assertTrue(java.util.Arrays.stream(v).anyMatch(x -> x != 0.0), e.getKey() + " is drawn");
                }
            }
            Path out = tmp.resolve("random-mm");
            m.export(out, Long.MAX_VALUE);
            try (SafeTensorsModel files = SafeTensorsModel.open(out)) {
                assertTrue(files.names().contains("language_model.model.embed_tokens.weight")
                        && files.names().stream().anyMatch(n -> n.startsWith("vision_tower.encoder.")), "transformers 5's layout: " + files.names());
            }
            Gemma3MultimodalModel back = Gemma3MultimodalModel.load(out, Device.CPU, DType.F32);
            assertEquals(m.namedParameters().keySet(), back.namedParameters().keySet());
            m.namedParameters().forEach((name, p) -> assertArrayEquals(p.tensor().toFloatArray(),
                    back.namedParameters().get(name).tensor().toFloatArray(), name));
        }
    }
}
