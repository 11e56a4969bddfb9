package dev.jtune.engine.cuda;

import dev.jtune.engine.ShapeException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The driver's rules for a tiled 2-D TMA map, checked on the host before the call so a refusal says what is wrong. */
class TensorMapTest {
    private static final long ALIGNED = 0x7f00_0000_0000L;

    @Test
    void attentionTilesFitTheSwizzledLayout() {
        // a [T, 256] bf16 head in 64 x 64 boxes (128-byte rows) with the 128-byte swizzle: attention's key and value tiles
        assertDoesNotThrow(() -> TensorMap.check(8192, 256, 256, 2, ALIGNED, 64, 64, TensorMap.Swizzle.B128));
        assertEquals(8192, TensorMap.boxBytes(64, 64, 2));
        // a box taller than the matrix is allowed: rows past its end read as zeros
        assertDoesNotThrow(() -> TensorMap.check(1, 256, 256, 2, ALIGNED, 64, 64, TensorMap.Swizzle.B128));
        assertEquals(128, KernelParam.TENSOR_MAP.bytes);
    }

    @Test
    void refusalsNameTheRuleBroken() {
        String wide = assertThrows(ShapeException.class,
                () -> TensorMap.check(64, 256, 256, 2, ALIGNED, 64, 128, TensorMap.Swizzle.B128)).getMessage();
        assertTrue(wide.contains("256 bytes") && wide.contains("swizzle's 128"), wide);
        String tall = assertThrows(ShapeException.class,
                () -> TensorMap.check(1024, 64, 64, 2, ALIGNED, 512, 64, TensorMap.Swizzle.B128)).getMessage();
        assertTrue(tall.contains("box side"), tall);
        String stride = assertThrows(ShapeException.class,
                () -> TensorMap.check(64, 60, 60, 2, ALIGNED, 64, 56, TensorMap.Swizzle.NONE)).getMessage();
        assertTrue(stride.contains("multiple of 16 bytes"), stride);
        String address = assertThrows(ShapeException.class,
                () -> TensorMap.check(64, 64, 64, 2, ALIGNED + 2, 64, 64, TensorMap.Swizzle.B128)).getMessage();
        assertTrue(address.contains("16-byte aligned"), address);
        String odd = assertThrows(ShapeException.class,
                () -> TensorMap.check(64, 64, 64, 2, ALIGNED, 64, 4, TensorMap.Swizzle.NONE)).getMessage();
        assertTrue(odd.contains("8 bytes"), odd);
        assertThrows(ShapeException.class, () -> TensorMap.check(64, 64, 32, 2, ALIGNED, 64, 64, TensorMap.Swizzle.B128), "a stride short of a row");
    }
}
