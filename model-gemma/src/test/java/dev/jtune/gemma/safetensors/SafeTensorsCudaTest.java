package dev.jtune.gemma.safetensors;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Loading straight from the mapping onto the GPU, and writing from GPU tensors. */
@Tag("gpu")
class SafeTensorsCudaTest {
    private static final Device GPU = Device.cuda(0);

    @TempDir
    Path dir;

    @Test
    void loadsOntoTheGpuAndWritesBackByteForByte() throws IOException {
        Path out = dir.resolve("model.safetensors");
        try (SafeTensorsFile f = SafeTensorsFile.open(Fixtures.tinyModel()); Scope s = Scope.open("gpu")) {
            SafeTensorsWriter w = new SafeTensorsWriter().metadata(f.metadata());
            for (String n : f.names()) {
                Tensor t = f.load(n, GPU);
                assertEquals(GPU, t.device());
                assertArrayEquals(f.bytes(n).toArray(ValueLayout.JAVA_BYTE), t.toByteArray(), n);
                w.add(n, t);
            }
            w.write(out);
            // a strided GPU view is written in row-major order
            Tensor q = f.load("model.layers.0.self_attn.q_proj.weight", GPU);
            new SafeTensorsWriter().add("qt", q.transpose(0, 1)).write(dir.resolve("qt.safetensors"));
            try (SafeTensorsFile g = SafeTensorsFile.open(dir.resolve("qt.safetensors"))) {
                Tensor cpu = f.load("model.layers.0.self_attn.q_proj.weight", Device.CPU).transpose(0, 1).contiguous();
                assertEquals(Shape.of(64, 128), g.info("qt").shape());
                assertArrayEquals(cpu.toByteArray(), g.bytes("qt").toArray(ValueLayout.JAVA_BYTE));
            }
        }
        assertEquals(-1, Files.mismatch(Fixtures.tinyModel(), out));
        try (SafeTensorsFile g = SafeTensorsFile.open(Fixtures.tinyGolden()); Scope s = Scope.open("gpu")) {
            Tensor logits = g.load("logits", GPU, DType.F32, Shape.of(2, 48, 512));
            assertArrayEquals(g.load("logits", Device.CPU).toFloatArray(), logits.toFloatArray());
            Tensor embed32;
            try (SafeTensorsFile m = SafeTensorsFile.open(Fixtures.tinyModel())) {
                int before = s.ownedCount();
                embed32 = m.loadAs("model.embed_tokens.weight", GPU, DType.F32);
                assertEquals(before + 1, s.ownedCount(), "loadAs leaves only the converted tensor");
                assertEquals(DType.F32, embed32.dtype());
                assertArrayEquals(m.load("model.embed_tokens.weight", Device.CPU).toFloatArray(), embed32.toFloatArray());
            }
        }
    }
}
