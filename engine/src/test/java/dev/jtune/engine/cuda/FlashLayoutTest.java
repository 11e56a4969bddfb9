package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The fused attention kernels' layout rule (no GPU: it reads shapes and strides only). */
class FlashLayoutTest {
    private Scope scope;

    @BeforeEach
    void open() {
        scope = Scope.open("flash layout");
    }

    @AfterEach
    void close() {
        scope.close();
    }

    private static Tensor bhtd(long b, long h, long t, long d) {
        return Tensor.zeros(Shape.of(b, h, t, d), DType.BF16, Device.CPU);
    }

    /** A [B, T, H, D] tensor viewed as [B, H, T, D]. */
    private static Tensor tokens(long b, long h, long t, long d) {
        return Tensor.zeros(Shape.of(b, t, h, d), DType.BF16, Device.CPU).transpose(1, 2);
    }

    @Test
    void tokensMajorIsTheProjectionsLayoutViewedAsHeads() {
        assertTrue(FlashKernels.tokensMajor(tokens(2, 4, 8, 16)));
        assertFalse(FlashKernels.tokensMajor(bhtd(2, 4, 8, 16)), "contiguous is heads-major");
        assertFalse(FlashKernels.tokensMajor(tokens(2, 1, 8, 16)), "one head: both layouts are the same contiguous tensor");
        assertFalse(FlashKernels.tokensMajor(bhtd(2, 4, 8, 16).transpose(2, 3)), "columns not contiguous");
        assertFalse(FlashKernels.tokensMajor(Tensor.zeros(Shape.of(2, 8, 6, 16), DType.BF16, Device.CPU).slice(2, 0, 4).transpose(1, 2)),
                "rows wider than the heads (a slice of a fused product) are neither layout");
    }

    @Test
    void layoutSetsOneBitPerTokensMajorOperand() {
        Tensor q = bhtd(1, 4, 8, 16);
        Tensor k = bhtd(1, 2, 8, 16);
        assertEquals(0, FlashKernels.layout(q, k, bhtd(1, 2, 8, 16), bhtd(1, 4, 8, 16)));
        assertEquals(FlashKernels.Operand.V.bit | FlashKernels.Operand.O.bit,
                FlashKernels.layout(q, k, tokens(1, 2, 8, 16), tokens(1, 4, 8, 16)));
        assertEquals(15, FlashKernels.layout(tokens(1, 4, 8, 16), tokens(1, 2, 8, 16), tokens(1, 2, 8, 16), tokens(1, 4, 8, 16)));
    }

    @Test
    void otherLayoutsAndGradientsInAnotherLayoutAreRefusedByName() {
        Tensor q = bhtd(1, 4, 8, 16);
        Tensor k = bhtd(1, 2, 8, 16);
        ShapeException odd = assertThrows(ShapeException.class,
                () -> FlashKernels.layout(q, k, bhtd(1, 2, 16, 8).transpose(2, 3), bhtd(1, 4, 8, 16)));
        assertTrue(odd.getMessage().contains("V must be contiguous"), odd.getMessage());
        ShapeException grad = assertThrows(ShapeException.class, () -> FlashKernels.layout(q, k, tokens(1, 2, 8, 16), bhtd(1, 4, 8, 16),
                bhtd(1, 4, 8, 16), bhtd(1, 2, 8, 16), bhtd(1, 2, 8, 16)));
        assertTrue(grad.getMessage().contains("gradient of V"), grad.getMessage());
    }
}
