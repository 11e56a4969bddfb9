package dev.jtune.gemma.lora;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** An adapter made for another model is refused with the file and the mismatch, never applied in part. */
class PeftAdapterFitTest {
    private static Gemma3Config config(int layers, int hidden) {
        String json = Gemma3Config.read(LoraGoldenTest.fixture("gemma3-tiny")).toHfJson()
                .replaceAll("\"num_hidden_layers\" : \\d+", "\"num_hidden_layers\" : " + layers)
                .replaceAll("\"hidden_size\" : \\d+", "\"hidden_size\" : " + hidden)
                .replaceAll("(?s)\"layer_types\" : \\[[^]]*]", "\"layer_types\" : [" + "\"sliding_attention\", ".repeat(layers - 1) + "\"full_attention\"]");
        return Gemma3Config.parse(json, "test");
    }

    /** An adapter on every linear module of a random model of this shape. */
    private static Path adapter(Path dir, Gemma3Config config) {
        try (Scope s = Scope.open("adapter")) {
            Gemma3Model m = Gemma3Model.random(config, Device.CPU, DType.F32, 1);
            PeftAdapter.save(dir, Lora.attach(m, LoraConfig.of(4, 8), DType.F32, 2), LoraConfig.of(4, 8), "test");
        }
        return dir;
    }

    private static Exception load(Path adapter, Gemma3Config base) {
        try (Scope s = Scope.open("load")) {
            Gemma3Model m = Gemma3Model.random(base, Device.CPU, DType.F32, 1);
            return assertThrows(RuntimeException.class, () -> PeftAdapter.load(adapter, m, DType.F32));
        }
    }

    @Test
    void moreLayersThanTheBaseHasAreNamed(@TempDir Path tmp) {
        Exception e = load(adapter(tmp.resolve("a"), config(3, 64)), config(2, 64));
        assertTrue(e instanceof AdapterException && e.getMessage().contains(PeftAdapter.WEIGHTS_FILE)
                && e.getMessage().contains("model.layers.2.") && e.getMessage().contains("another model"), e.getMessage());
    }

    @Test
    void aShapeThatDoesNotFitIsNamedWithBothShapes(@TempDir Path tmp) {
        Exception e = load(adapter(tmp.resolve("a"), config(2, 64)), config(2, 128));
        assertTrue(e instanceof SafeTensorsException && e.getMessage().contains("shape differs") && e.getMessage().contains("[4, 64]")
                && e.getMessage().contains("[4, 128]"), e.getMessage());
    }

    @Test
    void targetModulesTheBaseDoesNotHaveAreNamed(@TempDir Path tmp) throws Exception {
        Path dir = adapter(tmp.resolve("a"), config(2, 64));
        Path cfg = dir.resolve(PeftAdapter.CONFIG_FILE);
        Files.writeString(cfg, Files.readString(cfg).replace("\"down_proj\"", "\"query_key_value\""));
        Exception e = load(dir, config(2, 64));
        assertTrue(e.getMessage().contains(cfg.toString()) && e.getMessage().contains("[query_key_value]"), e.getMessage());
    }

    @Test
    void fullWeightsBesideTheAdapterAreRefused(@TempDir Path tmp) throws Exception {
        Path dir = adapter(tmp.resolve("a"), config(2, 64));
        try (Scope s = Scope.open("extra")) { // modules_to_save writes whole weights jtune cannot apply
            var w = new dev.jtune.gemma.safetensors.SafeTensorsWriter();
            try (var f = dev.jtune.gemma.safetensors.SafeTensorsFile.open(dir.resolve(PeftAdapter.WEIGHTS_FILE))) {
                for (String n : f.names()) {
                    w.add(n, f.load(n, Device.CPU));
                }
            }
            w.add("base_model.model.lm_head.weight", dev.jtune.engine.Tensor.zeros(dev.jtune.engine.Shape.of(512, 64), DType.F32, Device.CPU));
            w.write(dir.resolve(PeftAdapter.WEIGHTS_FILE));
        }
        Exception e = load(dir, config(2, 64));
        assertTrue(e.getMessage().contains("lm_head.weight"), e.getMessage());
        assertTrue(List.of(e.getMessage().split(" ")).contains("1"), e.getMessage());
    }
}
