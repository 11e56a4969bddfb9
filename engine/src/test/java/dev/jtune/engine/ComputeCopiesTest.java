package dev.jtune.engine;

import dev.jtune.engine.nn.ComputeCopies;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Random;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ComputeCopies}: one launch gives every weight's cast, bit for bit the per-weight cast's; castKept finds them while
 * the handle is open and casts anew after it closes; copies follow the weights' values at each {@link ComputeCopies#provide}.
 * (Gradients through the copies: LeafGradientTargetTest's PROVIDED_COPY.)
 */
class ComputeCopiesTest {
    private final long seed = Seeds.seed();
    private final Random rnd = new Random(seed);

    private SequencedMap<String, Tensor> weights(DType dtype, int count) {
        SequencedMap<String, Tensor> w = new LinkedHashMap<>();
        for (int i = 0; i < count; i++) {
            Shape s = Shape.of(1 + rnd.nextInt(40), 1 + rnd.nextInt(300)); // sizes that leave alignment gaps
            w.put("w" + i, Tensor.uniform(s, dtype, Device.CPU, rnd.nextLong(), -3, 3).requiresGrad(true));
        }
        return w;
    }

    @Test
    void theCopiesAreEachWeightsCastBitForBit() {
        DType[][] pairs = {{DType.F32, DType.BF16}, {DType.F32, DType.F16}, {DType.F64, DType.F32}, {DType.BF16, DType.F32}};
        for (DType[] pair : pairs) {
            try (Scope s = Scope.open("copies")) {
                SequencedMap<String, Tensor> w = weights(pair[0], 5);
                try (ComputeCopies copies = ComputeCopies.of(w, pair[1]); Scope.Entered provided = copies.provide()) {
                    for (var e : w.entrySet()) {
                        Tensor copy = Autograd.castKept(e.getValue(), pair[1]);
                        assertArrayEquals(e.getValue().cast(pair[1]).toDoubleArray(), copy.toDoubleArray(), 0,
                                pair[0] + " -> " + pair[1] + " " + e.getKey() + " (seed " + seed + ")");
                    }
                }
            }
        }
    }

    @Test
    void castKeptFindsTheCopiesOnlyWhileProvidedAndTheyFollowTheWeights() {
        try (Scope s = Scope.open("copies")) {
            SequencedMap<String, Tensor> w = weights(DType.F32, 3);
            Tensor a = w.firstEntry().getValue();
            Tensor b = w.lastEntry().getValue();
            try (ComputeCopies copies = ComputeCopies.of(w, DType.BF16)) {
                try (Scope.Entered provided = copies.provide()) {
                    assertSame(Autograd.castKept(a, DType.BF16).storage(), Autograd.castKept(b, DType.BF16).storage(),
                            "both found in the one flat buffer");
                }
                assertNotSame(Autograd.castKept(a, DType.BF16).storage(), Autograd.castKept(b, DType.BF16).storage(),
                        "after the handle closes, casts of their own");
                try (Autograd.GradMode off = Autograd.noGrad()) {
                    Ops.copyInto(Tensor.uniform(a.shape(), DType.F32, Device.CPU, rnd.nextLong(), -1, 1), a); // a step
                }
                try (Scope.Entered provided = copies.provide()) {
                    assertArrayEquals(a.cast(DType.BF16).toDoubleArray(), Autograd.castKept(a, DType.BF16).toDoubleArray(), 0,
                            "the next provide copies the new values (seed " + seed + ")");
                }
            }
        }
    }

    @Test
    void weightsOfMixedDtypesTheCopiesOwnDtypeOrANonLeafAreRefused() {
        try (Scope s = Scope.open("copies")) {
            SequencedMap<String, Tensor> mixed = weights(DType.F32, 1);
            mixed.put("half", Tensor.zeros(Shape.of(4), DType.BF16, Device.CPU).requiresGrad(true));
            assertThrows(IllegalArgumentException.class, () -> ComputeCopies.of(mixed, DType.BF16));
            assertThrows(IllegalArgumentException.class, () -> ComputeCopies.of(weights(DType.BF16, 2), DType.BF16));
            SequencedMap<String, Tensor> derived = new LinkedHashMap<>();
            derived.put("derived", weights(DType.F32, 1).firstEntry().getValue().mul(Tensor.full(Shape.scalar(), 2, DType.F32, Device.CPU)));
            assertTrue(derived.firstEntry().getValue().gradFn() != null);
            assertThrows(IllegalArgumentException.class, () -> ComputeCopies.of(derived, DType.BF16));
            assertThrows(IllegalArgumentException.class, () -> ComputeCopies.of(new LinkedHashMap<>(), DType.BF16));
        }
    }
}
