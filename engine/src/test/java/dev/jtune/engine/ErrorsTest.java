package dev.jtune.engine;

import dev.jtune.engine.cpu.CpuBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every misuse fails with the engine's exception for it, and the message names what a user needs to fix it. */
class ErrorsTest extends ScopedTest {

    private static Tensor f32(long... dims) {
        return Tensor.zeros(Shape.of(dims), DType.F32, Device.CPU);
    }

    /** Asserts the exception type and that its message mentions every fragment. */
    private static <T extends Throwable> T assertFails(Class<T> type, Executable action, String... fragments) {
        T e = assertThrows(type, action);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message lacks '" + f + "': " + e.getMessage());
        }
        return e;
    }

    @Test
    void shapeMismatchNamesTheOpAndBothShapes() {
        Tensor a = f32(2, 3);
        Tensor b = f32(4, 3);
        assertFails(ShapeException.class, () -> a.add(b), "add", "[2, 3]", "[4, 3]");
        assertFails(ShapeException.class, () -> a.sub(b), "sub", "[2, 3]", "[4, 3]");
        assertFails(ShapeException.class, () -> a.mul(b), "mul", "[2, 3]", "[4, 3]");
        assertFails(ShapeException.class, () -> a.div(b), "div", "[2, 3]", "[4, 3]");
    }

    @Test
    void dtypeMismatchNamesBothDtypes() {
        Tensor a = f32(2, 3);
        Tensor b = Tensor.zeros(Shape.of(2, 3), DType.BF16, Device.CPU);
        assertFails(DTypeException.class, () -> a.add(b), "add", "F32", "BF16");
        assertFails(DTypeException.class, () -> a.matmul(b.transpose(0, 1)), "matmul", "F32", "BF16");
    }

    @Test
    void deviceMismatchIsReported() {
        Tensor meta = Tensor.zeros(Shape.of(2, 3), DType.F32, Device.META);
        Tensor cpu = f32(2, 3);
        assertFails(DeviceMismatchException.class, () -> cpu.add(meta), "add", "cpu", "meta");
        assertFails(DeviceMismatchException.class, () -> meta.mul(cpu), "mul", "cpu", "meta");
        assertFails(DeviceMismatchException.class, () -> cpu.matmul(meta.transpose(0, 1)), "matmul", "cpu", "meta");
    }

    @Test
    void integerDtypesHaveNoArithmetic() {
        Tensor i = Tensor.zeros(Shape.of(2, 2), DType.I32, Device.CPU);
        Tensor u = Tensor.zeros(Shape.of(2, 2), DType.U8, Device.CPU);
        Tensor l = Tensor.zeros(Shape.of(2, 2), DType.I64, Device.CPU);
        assertFails(DTypeException.class, () -> i.add(i), "add", "I32");
        assertFails(DTypeException.class, () -> l.scale(2), "scale", "I64");
        assertFails(DTypeException.class, () -> u.sum(0), "sum", "U8");
        assertFails(DTypeException.class, () -> i.matmul(i), "matmul", "I32");
        assertFails(DTypeException.class, () -> Tensor.randn(Shape.of(2), DType.I32, Device.CPU, 1), "I32");
    }

    @Test
    void nf4CannotBeCast() {
        Tensor codes = Tensor.fromBytes(new byte[]{0x12, 0x34, 0x05}, Shape.of(5), DType.NF4, Device.CPU);
        assertFails(DTypeException.class, () -> codes.cast(DType.F32), "NF4", "F32");
        assertFails(DTypeException.class, () -> f32(4).cast(DType.NF4), "NF4", "F32");
        assertFails(DTypeException.class, () -> codes.add(codes), "NF4");
    }

    @Test
    void closedTensorsNameTheOp() {
        Tensor a = f32(2, 3);
        Tensor b = f32(2, 3);
        a.close();
        assertFails(ClosedException.class, () -> a.add(b), "add");
        assertFails(ClosedException.class, () -> b.mul(a), "mul");
        assertFails(ClosedException.class, () -> a.sum(0), "sum");
        assertFails(ClosedException.class, () -> a.matmul(b.transpose(0, 1)), "matmul");
        assertFails(ClosedException.class, a::toFloatArray, "copyToHost");
        assertFails(ClosedException.class, () -> a.cast(DType.F64), "copy");
    }

    @Test
    void creatingATensorWithNoOpenScopeFails() throws InterruptedException {
        // a fresh thread has no scopes, whatever this one has open
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread t = Thread.ofPlatform().start(() -> {
            try {
                f32(2);
            } catch (Throwable e) {
                failure.set(e);
            }
        });
        t.join();
        IllegalStateException e = assertInstanceOf(IllegalStateException.class, failure.get());
        assertTrue(e.getMessage().contains("no open Scope"), e.getMessage());
    }

    @Test
    void closedScopesRefuseWork() {
        Scope inner = Scope.open("inner");
        Tensor t = f32(3);
        inner.close();
        assertFails(ClosedException.class, () -> inner.keep(t), "keep", "inner");
        try (Storage loose = CpuBackend.instance().allocate(16, MemoryCategory.OTHER)) {
            assertFails(ClosedException.class, () -> inner.adopt(loose), "adopt", "inner");
        }
    }

    @Test
    void reshapeToAnotherSizeFails() {
        Tensor t = f32(2, 3);
        assertFails(ShapeException.class, () -> t.reshape(4, 2), "reshape", "[2, 3]", "[4, 2]");
        assertFails(ShapeException.class, () -> t.reshape(4, -1), "reshape", "-1");
        assertFails(ShapeException.class, () -> t.reshape(-1, -1), "reshape", "-1");
        assertFails(ShapeException.class, () -> t.view(7), "view", "[2, 3]", "[7]");
    }

    @Test
    void matmulInnerDimensionsMustAgree() {
        assertFails(ShapeException.class, () -> f32(2, 3).matmul(f32(4, 5)), "matmul", "[2, 3]", "[4, 5]", "3 vs 4");
        assertFails(ShapeException.class, () -> Ops.matmul(f32(2, 3), f32(5, 4), Transpose.B), "matmul", "3 vs 4");
        assertFails(ShapeException.class, () -> f32(2, 2, 3).matmul(f32(3, 2, 3, 1)), "matmul");
        assertFails(ShapeException.class, () -> f32(3).matmul(f32(3, 1)), "matmul", "rank");
    }

    @Test
    void maxOverAnEmptyAxisFails() {
        Tensor empty = f32(3, 0);
        assertFails(ShapeException.class, () -> empty.max(1), "max", "empty", "[3, 0]");
    }

    @Test
    void viewsOutOfRangeFail() {
        Tensor t = f32(2, 3);
        assertFails(ShapeException.class, () -> t.slice(1, 1, 5), "slice", "[2, 3]");
        assertFails(ShapeException.class, () -> t.transpose(0, 2), "axis 2", "[2, 3]");
        assertFails(ShapeException.class, () -> t.expand(Shape.of(4, 3)), "expand", "[2, 3]", "[4, 3]");
        assertFails(ShapeException.class, () -> Tensor.fromArray(new float[5], Shape.of(2, 3), DType.F32, Device.CPU), "fromArray", "5");
        assertFails(ShapeException.class, () -> Tensor.view(t.storage(), Shape.of(7), DType.F32), "view", "outside");
    }
}
