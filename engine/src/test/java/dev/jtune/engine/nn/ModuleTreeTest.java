package dev.jtune.engine.nn;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.RmsNorm.Scale;
import dev.jtune.engine.quant.Nf4Scales;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The tree's names: parameters and modules by dotted path in registration order, lookup, and the dense state. */
class ModuleTreeTest {
    /** A two-block toy with HF-like local names: embed, blocks.N.{norm, attn.{q, o}}, final norm. */
    static final class Block extends Module {
        final RmsNorm norm = child("norm", new RmsNorm(4, 1e-6, Scale.ONE_PLUS_WEIGHT));
        final Attn attn;

        Block(DequantWorkspace ws) {
            attn = child("attn", new Attn(ws));
        }
    }

    static final class Attn extends Module {
        final Linear q;
        final Linear o;

        Attn(DequantWorkspace ws) {
            q = child("q", new Linear(4, 8, Linear.Bias.WITH, ws));
            o = child("o", new Linear(8, 4, Linear.Bias.NONE, ws));
        }
    }

    static final class Toy extends Module {
        final Embedding embed = child("embed", new Embedding(10, 4));
        final ModuleList<Block> blocks = child("blocks", new ModuleList<>());
        final LayerNorm norm = child("norm", new LayerNorm(4, 1e-5));

        Toy(DequantWorkspace ws) {
            blocks.add(new Block(ws));
            blocks.add(new Block(ws));
        }
    }

    @Test
    void parametersAndModulesAreNamedByTheirPathInRegistrationOrder() {
        Toy toy = new Toy(new DequantWorkspace(DType.F32, Device.CPU));
        assertEquals(List.of("embed.weight",
                "blocks.0.norm.weight", "blocks.0.attn.q.weight", "blocks.0.attn.q.bias", "blocks.0.attn.o.weight",
                "blocks.1.norm.weight", "blocks.1.attn.q.weight", "blocks.1.attn.q.bias", "blocks.1.attn.o.weight",
                "norm.weight", "norm.bias"), List.copyOf(toy.namedParameters().keySet()));
        assertEquals(Shape.of(8, 4), toy.namedParameters().get("blocks.1.attn.q.weight").shape());
        assertEquals(Shape.of(8), toy.namedParameters().get("blocks.1.attn.q.bias").shape());
        assertEquals(List.of("", "embed", "blocks", "blocks.0", "blocks.0.norm", "blocks.0.attn", "blocks.0.attn.q", "blocks.0.attn.o",
                "blocks.1", "blocks.1.norm", "blocks.1.attn", "blocks.1.attn.q", "blocks.1.attn.o", "norm"), List.copyOf(toy.namedModules().keySet()));
        assertEquals(List.of("blocks.0.attn.q", "blocks.0.attn.o", "blocks.1.attn.q", "blocks.1.attn.o"),
                List.copyOf(toy.modules(Linear.class).keySet()));
        assertSame(toy.blocks.get(1).attn.o, toy.module("blocks.1.attn.o"));
        assertSame(toy.blocks.get(1).attn.o, toy.module("blocks.1.attn.o", Linear.class));
        assertSame(toy, toy.module(""));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> toy.module("blocks.1.mlp.o"));
        assertTrue(e.getMessage().contains("'blocks.1' has no child 'mlp'") && e.getMessage().contains("[norm, attn]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> toy.module("blocks.1.attn", Linear.class));
    }

    @Test
    void namesAreLocalAndUnique() {
        class Bad extends Module {
            void add(String name) {
                parameter(name, Shape.of(1));
            }
        }
        Bad bad = new Bad();
        bad.add("w");
        assertThrows(IllegalArgumentException.class, () -> bad.add("w"));
        assertThrows(IllegalArgumentException.class, () -> bad.add("a.b"));
        assertThrows(IllegalArgumentException.class, () -> bad.add(""));
    }

    @Test
    void valuesMustHaveTheParametersShape() {
        try (Scope s = Scope.open("shape")) {
            Embedding e = new Embedding(10, 4);
            ShapeException x = assertThrows(ShapeException.class, () -> e.weightParameter().set(Tensor.zeros(Shape.of(4, 10), DType.F32, Device.CPU)));
            assertTrue(x.getMessage().contains("'weight'") && x.getMessage().contains("[10, 4]"), x.getMessage());
            assertThrows(IllegalStateException.class, e::weight, "no value yet");
        }
    }

    /** stateDict gives dense parameters as themselves and an NF4 weight as a dequantized copy; byte accounting walks the tree. */
    @Test
    void stateDictAndBytesWalkTheTree() {
        try (Scope s = Scope.open("state")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Toy toy = new Toy(ws);
            long seed = 11;
            for (Parameter p : toy.namedParameters().values()) {
                p.set(Tensor.normal(p.shape(), DType.F32, Device.CPU, seed++, 0, 1));
            }
            long dense32 = (10 * 4 + 2 * (4 + 8 * 4 + 8 + 4 * 8) + 8) * 4L;
            assertEquals(dense32, toy.parameterBytes());
            Tensor q = toy.blocks.get(0).attn.q.weight();
            assertSame(q, toy.stateDict().get("blocks.0.attn.q.weight"), "a dense parameter is not copied");
            Linear o = toy.blocks.get(1).attn.o;
            o.quantize(Nf4Scales.FP32);
            assertEquals(dense32 - 4 * 8 * 4 + 16 + 4, toy.parameterBytes(), "NF4: 32 weights in 16 bytes of codes and one fp32 absmax");
            Tensor dense = toy.stateDict().get("blocks.1.attn.o.weight");
            assertEquals(Shape.of(4, 8), dense.shape());
            assertEquals(List.copyOf(toy.namedParameters().keySet()), List.copyOf(toy.stateDict().keySet()));
        }
    }
}
