package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.memory.MemoryStats;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.Isolated;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Scopes own memory: nesting, freeing on close (checked through the cpu backend's statistics), keep(). */
@Isolated // reads the cpu backend's process-wide allocation counters
class ScopeTest {
    private final CpuBackend cpu = CpuBackend.instance();
    private MemoryStats before;
    private Scope outer;

    @BeforeEach
    void start() {
        before = cpu.memoryStats();
        outer = Scope.open("outer");
    }

    @AfterEach
    void end() {
        outer.close();
        MemoryStats after = cpu.memoryStats();
        assertEquals(before.allocated(), after.allocated(), "every test frees what it allocated");
        assertEquals(after.allocations() - before.allocations(), after.frees() - before.frees(), "one free per allocation");
    }

    private static Tensor f32(long... dims) {
        return Tensor.zeros(Shape.of(dims), DType.F32, Device.CPU);
    }

    @Test
    void tensorsBelongToTheInnermostScope() {
        Tensor a = f32(2);
        try (Scope inner = Scope.open("inner")) {
            assertSame(inner, Scope.current());
            Tensor b = f32(3);
            assertEquals(1, inner.ownedCount());
            assertEquals(12, inner.ownedBytes());
            assertEquals(1, outer.ownedCount());
            assertFalse(a.isClosed() || b.isClosed());
        }
        assertSame(outer, Scope.current(), "closing a scope makes its parent current again");
    }

    @Test
    void closingAScopeFreesItsStorages() {
        cpu.resetPeaks();
        long base = cpu.memoryStats().allocated();
        long baseActivations = cpu.memoryStats().allocated(MemoryCategory.ACTIVATIONS);
        Random rnd = Seeds.random(31);
        Tensor[] made = new Tensor[5];
        long bytes = 0;
        try (Scope s = Scope.open("activations", MemoryCategory.ACTIVATIONS)) {
            for (int i = 0; i < made.length; i++) {
                DType d = TestTensors.NUMERIC[rnd.nextInt(TestTensors.NUMERIC.length)];
                made[i] = Tensor.zeros(Shape.of(RandomShapes.shape(rnd, 1, 3)), d, Device.CPU);
                bytes += d.bytesFor(made[i].numel());
            }
            MemoryStats inside = cpu.memoryStats();
            assertEquals(base + bytes, inside.allocated());
            assertEquals(inside.allocated(), inside.reserved());
            assertEquals(baseActivations + bytes, inside.allocated(MemoryCategory.ACTIVATIONS));
            assertEquals(baseActivations + bytes, inside.peak(MemoryCategory.ACTIVATIONS));
            assertEquals(base + bytes, inside.peakAllocated());
        }
        for (Tensor t : made) {
            assertTrue(t.isClosed());
        }
        MemoryStats after = cpu.memoryStats();
        assertEquals(base, after.allocated());
        assertEquals(baseActivations, after.allocated(MemoryCategory.ACTIVATIONS));
        assertEquals(base + bytes, after.peakAllocated(), "the peak remembers");
        assertEquals(after.peakAllocated(), after.peakReserved());
    }

    @Test
    void keepMovesATensorToTheParent() {
        Random rnd = Seeds.random(32);
        HostArray h = HostArray.random(rnd, new long[]{3, 4}, -1, 1);
        Tensor kept;
        Tensor dropped;
        try (Scope inner = Scope.open("inner")) {
            kept = inner.keep(h.toTensor(DType.F64).scale(2));
            dropped = f32(2);
            assertEquals(1, outer.ownedCount());
        }
        assertTrue(dropped.isClosed());
        assertFalse(kept.isClosed());
        double[] got = kept.toDoubleArray();
        for (int i = 0; i < got.length; i++) {
            assertEquals(h.data()[i] * 2, got[i]);
        }
        outer.close();
        assertTrue(kept.isClosed(), "the parent frees what it was handed");
    }

    @Test
    void closingAnOuterScopeClosesInnerOnes() {
        Scope middle = Scope.open("middle");
        Tensor a = f32(2);
        Scope inner = Scope.open("inner");
        Tensor b = f32(2);
        middle.close();
        assertTrue(inner.isClosed());
        assertTrue(a.isClosed() && b.isClosed());
        assertSame(outer, Scope.current());
    }

    @Test
    void viewsOfAClosedTensorThrow() {
        Tensor t = f32(4, 6);
        Tensor transposed = t.transpose(0, 1);
        Tensor sliced = t.slice(1, 2, 5);
        t.close();
        assertTrue(transposed.isClosed() && sliced.isClosed(), "views share the storage");
        assertThrows(ClosedException.class, transposed::toFloatArray);
        assertThrows(ClosedException.class, () -> sliced.add(sliced));
        assertThrows(ClosedException.class, () -> t.reshape(-1));
        assertThrows(ClosedException.class, () -> t.transpose(0, 1));
        assertThrows(ClosedException.class, () -> t.slice(0, 0, 1));
        assertThrows(ClosedException.class, () -> t.expand(Shape.of(2, 4, 6)));
        assertThrows(ClosedException.class, () -> t.unsqueeze(0));
        assertThrows(ClosedException.class, sliced::contiguous);
    }

    /** Frees of cpu storage so far (each {@code close} that really frees counts one). */
    private long frees() {
        return cpu.memoryStats().frees();
    }

    private static float[] iota(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = i;
        }
        return v;
    }

    @Test
    void closingAViewLeavesTheBaseAndItsSiblingsUsable() {
        Tensor t = Tensor.fromArray(iota(24), Shape.of(4, 6), DType.F32, Device.CPU);
        long allocated = cpu.memoryStats().allocated();
        long frees = frees();
        Tensor transposed = t.transpose(0, 1);
        Tensor sliced = t.slice(1, 2, 5);
        Tensor flat = t.reshape(-1);
        Tensor detached = t.detach();
        for (Tensor view : new Tensor[] {transposed, flat, detached}) {
            view.close();
            assertTrue(view.isClosed());
            ClosedException e = assertThrows(ClosedException.class, view::toFloatArray);
            assertTrue(e.getMessage().contains("this view was closed"), e.getMessage());
        }
        assertEquals(frees, frees(), "closing views frees nothing");
        assertEquals(allocated, cpu.memoryStats().allocated());
        assertFalse(t.isClosed() || sliced.isClosed());
        assertArrayEquals(iota(24), t.toFloatArray(), "the base still reads its data");
        assertArrayEquals(new float[] {2, 3, 4, 8, 9, 10, 14, 15, 16, 20, 21, 22}, sliced.toFloatArray(), "a sibling too");
        assertArrayEquals(new float[] {0, 2, 4, 6, 8, 10}, t.add(t).slice(0, 0, 1).toFloatArray(), "and ops on the base work");
        assertThrows(ClosedException.class, () -> transposed.add(transposed));
        try (Scope inner = Scope.open("inner")) {
            assertThrows(ClosedException.class, () -> inner.keep(flat));
        }
    }

    @Test
    void closingTheBaseAndAllItsViewsFreesTheStorageOnce() {
        Tensor t = f32(4, 6);
        Tensor a = t.transpose(0, 1);
        Tensor b = t.slice(0, 1, 3);
        long frees = frees();
        a.close();
        b.close();
        assertEquals(frees, frees());
        t.close();
        assertEquals(frees + 1, frees(), "the owner's close frees it");
        t.close();
        a.close();
        assertEquals(frees + 1, frees(), "once");
        // the other order: the owner first closes its views with it
        Tensor u = f32(3);
        Tensor v = u.unsqueeze(0);
        u.close();
        assertTrue(v.isClosed(), "a view of a freed storage is closed");
        assertThrows(ClosedException.class, v::toFloatArray);
        v.close();
        assertEquals(frees + 2, frees());
        // @AfterEach: one free per allocation when the outer scope closes too
    }

    @Test
    void closingAScopeFreesAStorageWithOpenAndClosedViewsOnce() {
        long frees = frees();
        Tensor t;
        Tensor view;
        Tensor closedView;
        try (Scope inner = Scope.open("inner")) {
            t = f32(2, 3);
            view = t.reshape(3, 2);
            closedView = t.transpose(0, 1);
            closedView.close();
            assertEquals(1, inner.ownedCount(), "views own nothing: the scope holds one storage");
        }
        assertEquals(frees + 1, frees());
        assertTrue(t.isClosed() && view.isClosed() && closedView.isClosed());
        t.close();
        view.close();
        assertEquals(frees + 1, frees());
    }

    @Test
    void keepingAViewMovesItsStorageAndTheBaseWithIt() {
        long frees = frees();
        Tensor base;
        Tensor kept;
        try (Scope inner = Scope.open("inner")) {
            base = Tensor.fromArray(iota(6), Shape.of(2, 3), DType.F32, Device.CPU);
            kept = inner.keep(base.slice(1, 1, 3));
        }
        assertEquals(frees, frees(), "the storage moved to the outer scope");
        assertArrayEquals(new float[] {1, 2, 4, 5}, kept.toFloatArray());
        kept.close();
        assertArrayEquals(iota(6), base.toFloatArray(), "closing the kept view leaves its base");
    }

    @Test
    void nothingStaysAllocatedAfterAScopeCloses() {
        long base = cpu.memoryStats().allocated();
        Random rnd = Seeds.random(33);
        try (Scope work = Scope.open("work")) {
            // ops on strided views make temporaries (contiguous copies); they must not outlive the op
            HostArray h = HostArray.random(rnd, new long[]{5, 6}, -1, 1);
            Tensor view = TestTensors.withLayout(h, DType.F32, TestTensors.Layout.SLICED, rnd);
            int owned = work.ownedCount();
            Tensor sum = view.sum(1);
            Tensor product = view.matmul(view.transpose(0, 1).contiguous());
            view.toFloatArray();
            assertEquals(owned + 3, work.ownedCount(), "sum, the contiguous copy and the product; no temporaries");
            assertArrayEquals(new long[]{5, 5}, product.shape().toArray());
            assertFalse(sum.isClosed());
        }
        assertEquals(base, cpu.memoryStats().allocated());
        assertEquals(0, Scope.current().ownedCount(), "nothing moved to the enclosing scope");
    }
}
