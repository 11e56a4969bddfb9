package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.testing.Seeds;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The launch arithmetic of the cuda kernels that needs no GPU: strided layouts and their chunked form, vector widths,
 * row launches, shared-memory sizes, grids, and the cuBLASLt plan key. Addresses are made up; what matters is their
 * alignment.
 */
class LaunchArithmeticTest {
    private static final long ALIGNED = 0x7f00_0000_0000L; // 256-byte aligned, like a fresh device allocation

    // ---------------------------------------------------------------- StridedLayout

    @Test
    void ropeBlocksCoverARowsPairsInWholeWarps() {
        assertEquals(32, RopeKernels.threads(1));
        assertEquals(32, RopeKernels.threads(8));
        assertEquals(128, RopeKernels.threads(128)); // Gemma 3's heads of 256
        assertEquals(96, RopeKernels.threads(65));
        assertEquals(256, RopeKernels.threads(1000)); // wider rows loop over their pairs
    }

    @Test
    void aContiguousTensorCoalescesToOneDimension() {
        long[][] l = StridedLayout.coalesce(new long[] {2, 3, 4}, new long[] {12, 4, 1});
        assertArrayEquals(new long[] {24}, l[0]);
        assertArrayEquals(new long[] {1}, l[1]);
        assertEquals(24, StridedLayout.count(l[0]));
    }

    @Test
    void aTransposeKeepsItsDimensions() {
        long[][] l = StridedLayout.coalesce(new long[] {3, 4}, new long[] {1, 3});
        assertArrayEquals(new long[] {3, 4}, l[0]);
        assertArrayEquals(new long[] {1, 3}, l[1]);
    }

    @Test
    void dimensionsMergeOnlyWhereEveryOperandStepsThroughThemAsOne() {
        // out and a contiguous [2, 3, 4]; b a row [4] broadcast (strides 0, 0, 1)
        long[][] l = StridedLayout.coalesce(new long[] {2, 3, 4}, new long[] {12, 4, 1}, new long[] {12, 4, 1}, new long[] {0, 0, 1});
        assertArrayEquals(new long[] {6, 4}, l[0]);
        assertArrayEquals(new long[] {4, 1}, l[1]);
        assertArrayEquals(new long[] {4, 1}, l[2]);
        assertArrayEquals(new long[] {0, 1}, l[3]);
    }

    @Test
    void sizeOneAxesDropAndAScalarIsOneElement() {
        long[][] l = StridedLayout.coalesce(new long[] {1, 5, 1}, new long[] {5, 1, 1});
        assertArrayEquals(new long[] {5}, l[0]);
        assertArrayEquals(new long[] {1}, l[1]);
        long[][] scalar = StridedLayout.coalesce(new long[] {}, new long[] {});
        assertArrayEquals(new long[] {1}, scalar[0]);
        assertArrayEquals(new long[] {0}, scalar[1]);
    }

    @Test
    void theTensorFormReadsShapeAndStridesOfEachOperand() {
        try (Scope s = Scope.open("layout")) {
            Tensor t = Tensor.empty(Shape.of(4, 3), DType.F32, Device.CPU).transpose(0, 1); // [3, 4], strides [1, 3]
            Tensor c = Tensor.empty(Shape.of(3, 4), DType.F32, Device.CPU);
            long[][] l = StridedLayout.coalesce(c, t);
            assertArrayEquals(new long[] {3, 4}, l[0]);
            assertArrayEquals(new long[] {4, 1}, l[1]);
            assertArrayEquals(new long[] {1, 3}, l[2]);
        }
    }

    @Test
    void chunksNeedAContiguousInnerMultipleStridesInChunksAndAlignedAddresses() {
        int chunk = ElementwiseKernels.CHUNK;
        long[][] contiguous = StridedLayout.coalesce(new long[] {4, 16}, new long[] {16, 1}, new long[] {16, 1});
        long[][] c = StridedLayout.chunked(contiguous, chunk, ALIGNED, ALIGNED + 64);
        assertArrayEquals(new long[] {8}, c[0]);
        assertArrayEquals(new long[] {1}, c[1]);
        assertArrayEquals(new long[] {1}, c[2]);

        long[][] rowsOf24 = StridedLayout.coalesce(new long[] {4, 16}, new long[] {24, 1}); // a slice of [4, 24]
        long[][] r = StridedLayout.chunked(rowsOf24, chunk, ALIGNED);
        assertArrayEquals(new long[] {4, 2}, r[0]);
        assertArrayEquals(new long[] {3, 1}, r[1]);

        assertArrayEquals(new long[] {6}, StridedLayout.chunked(StridedLayout.coalesce(new long[] {4, 12}, new long[] {12, 1}),
                chunk, ALIGNED)[0], "a contiguous [4, 12] is one dimension of 48: 6 chunks");
        assertNull(StridedLayout.chunked(StridedLayout.coalesce(new long[] {4, 12}, new long[] {20, 1}), chunk, ALIGNED),
                "an inner dimension of 12");
        assertNull(StridedLayout.chunked(StridedLayout.coalesce(new long[] {4, 16}, new long[] {20, 1}), chunk, ALIGNED),
                "a row stride of 20");
        assertNull(StridedLayout.chunked(contiguous, chunk, ALIGNED, ALIGNED + 8), "an address aligned to 8 only");
        assertNull(StridedLayout.chunked(StridedLayout.coalesce(new long[] {16, 4}, new long[] {1, 16}), chunk, ALIGNED),
                "a transposed inner dimension");
    }

    @Test
    void theLayoutStructIsWrittenAsCommonCuhDeclaresIt() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(StridedLayout.BYTES);
            s.fill((byte) 0x55);
            StridedLayout.write(s, new long[] {6, 4}, new long[] {4, 1});
            assertEquals(2, s.get(ValueLayout.JAVA_INT, 0));
            assertEquals(0, s.get(ValueLayout.JAVA_INT, 4), "padding after rank");
            assertEquals(6, s.get(ValueLayout.JAVA_LONG, 8));
            assertEquals(4, s.get(ValueLayout.JAVA_LONG, 16));
            assertEquals(0, s.get(ValueLayout.JAVA_LONG, 24), "unused dimensions are zero");
            assertEquals(4, s.get(ValueLayout.JAVA_LONG, 8 + 8 * Shape.MAX_RANK));
            assertEquals(1, s.get(ValueLayout.JAVA_LONG, 16 + 8 * Shape.MAX_RANK));
        }
    }

    // ---------------------------------------------------------------- vector widths and row launches

    @Test
    void theVectorWidthNeedsADivisibleRowAndEveryOperandAligned() {
        int[] bf16 = {2, 2};
        assertEquals(8, RowLaunch.vectorWidth(8, 4096, new long[] {ALIGNED, ALIGNED + 16}, bf16));
        assertEquals(1, RowLaunch.vectorWidth(8, 4100, new long[] {ALIGNED, ALIGNED}, bf16), "row not a multiple of 8");
        assertEquals(1, RowLaunch.vectorWidth(8, 4096, new long[] {ALIGNED, ALIGNED + 8}, bf16), "one operand 8-byte aligned");
        assertEquals(1, RowLaunch.vectorWidth(1, 4096, new long[] {ALIGNED}, new int[] {4}));
        // attention_softmax: 4 F32 scores (16 bytes) and 4 BF16 probs (8 bytes) per access
        assertEquals(4, RowLaunch.vectorWidth(SoftmaxKernels.ATTENTION_VEC, 512, new long[] {ALIGNED, ALIGNED + 8}, new int[] {4, 2}));
        assertEquals(1, RowLaunch.vectorWidth(SoftmaxKernels.ATTENTION_VEC, 512, new long[] {ALIGNED, ALIGNED + 4}, new int[] {4, 2}));
        // an access of 2 F64s is 16 bytes
        assertEquals(2, RowLaunch.vectorWidth(2, 10, new long[] {ALIGNED + 16}, new int[] {8}));
    }

    @Test
    void perAccessIsSixteenBytesOfTheDtype() {
        try (Scope s = Scope.open("per access")) {
            assertEquals(8, RowLaunch.perAccess(Tensor.empty(Shape.of(2), DType.BF16, Device.CPU)));
            assertEquals(4, RowLaunch.perAccess(Tensor.empty(Shape.of(2), DType.F32, Device.CPU)));
            assertEquals(2, RowLaunch.perAccess(Tensor.empty(Shape.of(2), DType.F64, Device.CPU)));
        }
        assertEquals("_vec", RowLaunch.vecSuffix(8));
        assertEquals("", RowLaunch.vecSuffix(1));
    }

    @Test
    void shortRowsGetAWarpEachAndLongRowsABlock() {
        RowLaunch warps = RowLaunch.of(100, 512, 4224);
        assertEquals(new RowLaunch(13, 32, RowLaunch.WARP_ROWS_PER_BLOCK), warps);
        assertEquals(104, warps.slots());
        assertEquals(new RowLaunch(100, 32, 8), RowLaunch.of(1_000_000, 64, 100), "the grid is capped and strides");
        assertEquals(new RowLaunch(7, 512, 1), RowLaunch.of(7, 4096, 4224), "about 8 elements a thread");
        assertEquals(new RowLaunch(7, 160, 1), RowLaunch.of(7, 1025, 4224), "threads round up to whole warps");
        assertEquals(new RowLaunch(7, 1024, 1), RowLaunch.of(7, 100_000, 4224), "at most 1024 threads");
        assertEquals(1, RowLaunch.of(0, 64, 4224).grid(), "never an empty grid");
    }

    // ---------------------------------------------------------------- shared memory and grids of the fused kernels

    @Test
    void theOnePassCrossEntropyHoldsEveryChunkOfARowInTheFewestWholeWarps() {
        assertEquals(512, LossKernels.clusterThreads(262_144, 8), "Gemma's vocabulary in bf16: two blocks an SM");
        assertEquals(544, LossKernels.clusterThreads(262_208, 8), "the multimodal vocabulary");
        assertEquals(1024, LossKernels.clusterThreads(262_144, 4), "f32");
        assertEquals(0, LossKernels.clusterThreads(262_144, 2), "f64 would need 2,048 threads");
        assertEquals(0, LossKernels.clusterThreads(262_143, 8), "not whole 16-byte chunks");
        assertEquals(32, LossKernels.clusterThreads(8, 8), "one chunk: one warp, most threads idle");
        assertEquals(0, LossKernels.clusterThreads(0, 8));
        long seed = Seeds.seed();
        java.util.Random rnd = new java.util.Random(seed);
        for (int i = 0; i < 1000; i++) {
            int perAccess = 1 << (1 + rnd.nextInt(3));
            long length = perAccess * (1L + rnd.nextInt(140_000));
            int threads = LossKernels.clusterThreads(length, perAccess);
            long chunks = length / perAccess;
            long held = (long) LossKernels.CE_CLUSTER * LossKernels.CE_HELD;
            String what = length + " elements, " + perAccess + " a chunk (seed " + seed + ")";
            if (threads == 0) {
                assertTrue(chunks > held * 1024, what + " fits 1,024 threads but was refused");
            } else {
                assertEquals(0, threads % 32, what);
                assertTrue(held * threads >= chunks, what + ": a chunk has no thread");
                assertTrue(held * (threads - 32) < chunks, what + ": a whole warp holds nothing");
            }
        }
    }

    @Test
    void flashSharedMemoryIsTheKernelsTilesPaddedRows() {
        FlashKernels.Tiles d128 = FlashKernels.TILES.get(128);
        FlashKernels.Tiles d256 = FlashKernels.TILES.get(256);
        // forward: q tile (64 rows) + k and v tiles (64 keys), rows of 128 + 8 bf16
        assertEquals((64 + 2 * 64) * 136 * 2, FlashKernels.forwardShared(2, 128, d128));
        // dQ: q and dO tiles + k and v tiles of 32 keys at head size 256
        assertEquals((2 * 64 + 2 * 32) * 264 * 2, FlashKernels.dqShared(2, 256, d256));
        // dK/dV: k and v tiles + q and dO tiles of 32 queries, then lse and delta of those queries in fp32
        assertEquals((2 * 64 + 2 * 32) * 136 * 2 + 2 * 4 * 32, FlashKernels.dkvShared(2, 128, d128));
    }

    @Test
    void everyFlashTileFitsTheMachineAndTheMmaShapes() {
        int optInLimit = 227 * 1024; // H100's most dynamic shared memory per block
        assertEquals(FlashKernels.WARPS * 32, FlashKernels.THREADS);
        assertEquals(FlashKernels.WARPS * 16, FlashKernels.ROWS);
        FlashKernels.TILES.forEach((d, t) -> {
            for (int elem : new int[] {2}) {
                assertTrue(FlashKernels.forwardShared(elem, d, t) <= optInLimit, "forward D=" + d);
                assertTrue(FlashKernels.dqShared(elem, d, t) <= optInLimit, "dQ D=" + d);
                assertTrue(FlashKernels.dkvShared(elem, d, t) <= optInLimit, "dK/dV D=" + d);
            }
            // mma.sync m16n8k16: reductions over keys, queries and D run 16 at a time; column tiles go in pairs of 8
            assertEquals(0, d % 16, "D=" + d);
            assertEquals(0, t.forwardKeys() % 16, "forward keys, D=" + d);
            assertEquals(0, t.dqKeys() % 16, "dQ keys, D=" + d);
            assertEquals(0, t.dkvQueries() % 16, "dK/dV queries, D=" + d);
            assertEquals(0, t.dkvColumns() % 16, "dK/dV columns, D=" + d);
            assertEquals(0, d % t.dkvColumns(), "dK/dV column slices tile D=" + d);
        });
        assertTrue(FlashKernels.supports(DType.BF16, 128) && FlashKernels.supports(DType.F16, 32));
        assertFalse(FlashKernels.supports(DType.F32, 128));
        assertFalse(FlashKernels.supports(DType.BF16, 96));
    }

    @Test
    void theWgmmaForwardPairsHeadsOfAKeyValueHeadAndFitsSharedMemory() {
        // two 64-row query tiles, two 64-key k and v tiles each, bf16 rows of 256: 192 KiB of H100's 227
        assertEquals((2 * 64 + 4 * 64) * 256 * 2, FlashWgmmaKernels.shared());
        assertTrue(FlashWgmmaKernels.shared() <= 227 * 1024);
        // the TMA forward: the same tiles, 1 KiB to align the swizzled boxes, two mbarriers
        assertEquals((2 * 64 + 4 * 64) * 256 * 2 + 1024 + 16, FlashWgmmaKernels.tmaShared(false));
        assertEquals(FlashWgmmaKernels.tmaShared(false) + 16, FlashWgmmaKernels.tmaShared(true), "two empty barriers");
        assertTrue(FlashWgmmaKernels.tmaShared(true) <= 227 * 1024);
        assertEquals((4 * 64 + 3 * 64) * 256 * 2 + 1024 + 24, FlashWgmmaKernels.tmaDqShared());
        assertTrue(FlashWgmmaKernels.tmaDqShared() <= 227 * 1024, "the TMA dQ's " + FlashWgmmaKernels.tmaDqShared() + " bytes");
        assertEquals(FlashWgmmaKernels.dkvShared() + 1024 + 16, FlashWgmmaKernels.tmaDkvShared(false));
        assertEquals(FlashWgmmaKernels.tmaDkvShared(false) + 64 * 64 * 4, FlashWgmmaKernels.tmaDkvShared(true), "a second P^T buffer");
        assertTrue(FlashWgmmaKernels.tmaDkvShared(true) <= 227 * 1024, "the ping-pong dK/dV fits: " + FlashWgmmaKernels.tmaDkvShared(true));
        // dQ: both groups' q and dO tiles, two k tiles and one v tile: 224 KiB
        assertEquals((4 * 64 + 3 * 64) * 256 * 2, FlashWgmmaKernels.dqShared());
        assertTrue(FlashWgmmaKernels.dqShared() <= 227 * 1024);
        // dK/dV: k, v, two q and two dO tiles, the fp32 P^T hand-over (64 x 64), two buffers of lse and delta
        assertEquals((2 * 64 + 4 * 64) * 256 * 2 + 64 * 64 * 4 + 2 * 2 * 64 * 4, FlashWgmmaKernels.dkvShared());
        assertTrue(FlashWgmmaKernels.dkvShared() <= 227 * 1024);
        assertEquals(2 * 128, FlashWgmmaKernels.THREADS, "two warpgroups");
        // Gemma 3 270M (4 query heads, 1 kv head): blocks of two heads at 64 positions
        assertArrayEquals(new long[] {2 * 4 / 2, 8192 / 64}, FlashWgmmaKernels.grid(2, 4, 1, 8192));
        assertArrayEquals(new long[] {2, 2}, FlashWgmmaKernels.grid(1, 4, 2, 65), "2 heads per kv head pair too; 65 rows: 2 tiles");
        // an odd group: one head, 128 consecutive queries
        assertArrayEquals(new long[] {3, 2}, FlashWgmmaKernels.grid(1, 3, 1, 130));
        assertArrayEquals(new long[] {2, 1}, FlashWgmmaKernels.grid(1, 2, 2, 128));
        assertTrue(FlashWgmmaKernels.supports("sm_90", DType.BF16, 256));
        assertFalse(FlashWgmmaKernels.supports("sm_90", DType.F16, 256));
        assertFalse(FlashWgmmaKernels.supports("sm_90", DType.BF16, 128));
        assertFalse(FlashWgmmaKernels.supports("sm_89", DType.BF16, 256));
    }

    @Test
    void groupedHeadsSplitTheirDkvBlocksFromTwoThousandVisibleKeys() {
        assertTrue(FlashKernels.splitHeads(4, 0, 8192));
        assertFalse(FlashKernels.splitHeads(1, 0, 8192), "no group to split");
        assertFalse(FlashKernels.splitHeads(4, 0, 2047));
        assertTrue(FlashKernels.splitHeads(4, 0, 2048));
        assertFalse(FlashKernels.splitHeads(4, 512, 8192), "a window of 512 sees few keys");
        assertTrue(FlashKernels.splitHeads(4, 4096, 8192));
        assertFalse(FlashKernels.splitHeads(4, 100_000, 1024), "a window longer than the sequence");
        assertTrue(FlashKernels.splitHeads(4, 0, 16383));
        assertFalse(FlashKernels.splitHeads(4, 0, 16384), "from 16K tokens one block a kv head has blocks to spare");
        assertFalse(FlashKernels.splitHeads(4, 0, 32768));
    }

    @Test
    void normWeightGradientPartialsStayWithinTheirScratch() {
        // Gemma 3 270M at 8192 tokens, 132 multiprocessors: 8 warps' lines of 640 floats stay in shared memory
        NormKernels.WeightGradientLaunch l = NormKernels.weightGradientLaunch(8192, 640, 4, 132, 132 * 32);
        assertEquals(new RowLaunch(4 * 132, 32, 8), l.rows(), "at most 4 blocks per multiprocessor");
        assertTrue(l.slotsShared());
        assertEquals(8 * 640 * 4, l.sharedBytes());
        assertEquals(4 * 132, l.lines(), "one scratch line a block");
        assertEquals(4 * 132 * 640 * 4, l.scratchBytes());
        // f64 lines of 1024 for 8 warps (64 KiB) no longer fit: one scratch line a slot
        NormKernels.WeightGradientLaunch f64 = NormKernels.weightGradientLaunch(8192, 1024, 8, 132, 132 * 32);
        assertFalse(f64.slotsShared());
        assertEquals(0, f64.sharedBytes());
        assertEquals(f64.rows().slots(), f64.lines());
        NormKernels.WeightGradientLaunch wide = NormKernels.weightGradientLaunch(8192, 262_144, 4, 132, 132 * 32);
        assertEquals(1024, wide.rows().blockX());
        assertFalse(wide.slotsShared(), "a 1 MiB line is more than a block's shared memory");
        assertEquals(NormKernels.PARTIAL_BYTES / (262_144 * 4), wide.rows().grid(), "cut to the scratch");
        for (NormKernels.WeightGradientLaunch r : List.of(l, f64, wide)) {
            assertTrue(r.scratchBytes() <= NormKernels.PARTIAL_BYTES);
            assertTrue(r.sharedBytes() <= NormKernels.SHARED_SLOT_BYTES);
        }
        assertEquals(1, NormKernels.weightGradientLaunch(8, 16L << 20, 4, 132, 4224).rows().grid(), "at least one block");
        assertEquals(new RowLaunch(2, 32, 8), NormKernels.weightGradientLaunch(10, 64, 8, 132, 4224).rows(), "few rows, few blocks");
    }

    @Test
    void thePlainNormsHoldVectorisedWarpRowsOfAtMostThreeChunksALane() {
        assertTrue(NormKernels.heldNormRows(RowLaunch.of(8192, 640, 4224), 640, 8), "Gemma 270M's hidden 640 in bf16: 80 chunks");
        assertTrue(NormKernels.heldNormRows(RowLaunch.of(8192, 768, 4224), 768, 8), "96 chunks: three a lane");
        assertFalse(NormKernels.heldNormRows(RowLaunch.of(8192, 1000, 4224), 1000, 8), "125 chunks");
        assertFalse(NormKernels.heldNormRows(RowLaunch.of(8192, 1152, 4224), 1152, 8), "1B's 1,152: a block a row");
        assertFalse(NormKernels.heldNormRows(RowLaunch.of(8192, 64, 4224), 64, 1), "the scalar kernels");
        assertTrue(NormKernels.heldNormRows(RowLaunch.of(3, 64, 4224), 64, 4), "f32 rows of the tiny model");
    }

    @Test
    void theFusedNormRopeHoldsRowsOfAtMostAWarpOfChunksInPairs() {
        assertTrue(NormKernels.heldRows(256, 8), "Gemma's heads of 256 in bf16: 32 chunks");
        assertTrue(NormKernels.heldRows(128, 4), "f32 heads of 128");
        assertTrue(NormKernels.heldRows(8, 1), "a scalar row of 8");
        assertFalse(NormKernels.heldRows(256, 4), "64 chunks: more than a warp's lanes");
        assertFalse(NormKernels.heldRows(256, 1), "the scalar instantiation of a 256 row");
        assertFalse(NormKernels.heldRows(24, 8), "3 chunks: a pair's halves would split a chunk");
        assertFalse(NormKernels.heldRows(6, 4), "not whole chunks");
        assertEquals(256, NormKernels.NORM_ROPE_THREADS, "the kernels' launch bounds cover the launch's largest block");
        NormKernels.NormRopeLaunch launch = NormKernels.normRopeLaunch(8192, 256, 4, false, 132, 132L * 32);
        assertTrue(launch.warps() * 32 <= NormKernels.NORM_ROPE_THREADS);
    }

    @Test
    void normRopeBuffersFitTheBlocksSharedMemory() {
        // Gemma's head dimension 256: 8 warps, forward 2 rows a warp, backward 3, beside invFreq [128] floats
        NormKernels.NormRopeLaunch fwd = NormKernels.normRopeLaunch(8192, 256, 4, false, 132, 132 * 32);
        assertEquals(8, fwd.warps());
        assertEquals(8 * 2 * 256 * 4 + 128 * 4, fwd.sharedBytes());
        assertEquals(1024, fwd.grid(), "a warp a (b, t) row");
        NormKernels.NormRopeLaunch bwd = NormKernels.normRopeLaunch(8192, 256, 4, true, 132, 132 * 32);
        assertEquals(8 * 3 * 256 * 4 + 128 * 4, bwd.sharedBytes());
        assertEquals(4 * 132, bwd.grid(), "at most 4 blocks a multiprocessor: one weight-gradient line each");
        assertEquals(4 * 132 * 256 * 4, NormKernels.normRopeWorkspaceBytes(8192, 256, DType.BF16, 132));
        // F64 rows of 1024: fewer warps; the largest head dimension still gets one
        assertEquals(1, NormKernels.normRopeLaunch(10, 1024, 8, true, 132, 4224).warps());
        for (int acc : new int[] {4, 8}) {
            long max = NormKernels.maxNormRopeHeadDim(acc);
            NormKernels.NormRopeLaunch l = NormKernels.normRopeLaunch(3, max, acc, true, 132, 4224);
            assertEquals(1, l.warps());
            assertTrue(l.sharedBytes() <= NormKernels.SHARED_SLOT_BYTES);
            assertThrows(UnsupportedOpException.class, () -> NormKernels.normRopeLaunch(3, max + 2, acc, true, 132, 4224));
        }
        assertTrue(NormKernels.maxNormRopeHeadDim(8) >= 1024, "the op's fused limit is within the kernel's");
        assertEquals(0, NormKernels.normRopeWorkspaceBytes(0, 256, DType.BF16, 132));
    }

    @Test
    void stridedRowsMoveInVectorsOnlyWhenEveryRowStartIsAligned() {
        try (Scope s = Scope.open("strided rows")) {
            Tensor bthd = Tensor.zeros(Shape.of(2, 3, 4, 256), DType.BF16, Device.CPU);
            assertEquals(8, NormKernels.stridedVectorWidth(256, bthd.transpose(1, 2)), "the projection's view: strides of 256 and 1024");
            Tensor odd = Tensor.zeros(Shape.of(2, 3, 4, 260), DType.BF16, Device.CPU).slice(3, 0, 256);
            assertEquals(1, NormKernels.stridedVectorWidth(256, odd), "rows 260 apart start 8-byte aligned only");
        }
    }

    @Test
    void embeddingRowsMoveInTheWidestAlignedUnit() {
        assertEquals(16, EmbeddingKernels.gatherUnit(1280, ALIGNED, ALIGNED));
        assertEquals(8, EmbeddingKernels.gatherUnit(1288, ALIGNED, ALIGNED));
        assertEquals(8, EmbeddingKernels.gatherUnit(1280, ALIGNED + 8, ALIGNED));
        assertEquals(4, EmbeddingKernels.gatherUnit(1280, ALIGNED, ALIGNED + 4));
        assertEquals(2, EmbeddingKernels.gatherUnit(1282, ALIGNED, ALIGNED));
    }

    @Test
    void nf4VectorisesWholeAlignedChunks() {
        assertTrue(Nf4Kernels.vectorised(64, ALIGNED, ALIGNED));
        assertTrue(Nf4Kernels.vectorised(Nf4Kernels.CHUNK, ALIGNED, ALIGNED + 16));
        assertFalse(Nf4Kernels.vectorised(Nf4Kernels.CHUNK - 1, ALIGNED, ALIGNED));
        assertFalse(Nf4Kernels.vectorised(64, ALIGNED + 8, ALIGNED), "codes");
        assertFalse(Nf4Kernels.vectorised(64, ALIGNED, ALIGNED + 2), "output");
    }

    // ---------------------------------------------------------------- cuBLASLt plans

    private static LtMatmul.Operand op(DType dtype, long address, long... dims) {
        return new LtMatmul.Operand(Shape.of(dims), dtype, address, dims[dims.length - 1]);
    }

    @Test
    void equalProductsShareAPlanKey() {
        LtMatmul.Key k1 = LtMatmul.Key.of(op(DType.BF16, ALIGNED, 8, 32), false, op(DType.BF16, ALIGNED + 512, 32, 16), false,
                op(DType.BF16, ALIGNED + 4096, 8, 16));
        LtMatmul.Key k2 = LtMatmul.Key.of(op(DType.BF16, ALIGNED + 1024, 8, 32), false, op(DType.BF16, ALIGNED + 2048, 32, 16), false,
                op(DType.BF16, ALIGNED + 8192, 8, 16));
        assertEquals(k1, k2);
        assertEquals(k1.hashCode(), k2.hashCode());
        assertEquals(new LtMatmul.Key(1, 8, 16, 32, false, false, false, DType.BF16, DType.BF16, 256, 256, 256, 32, 16, 16), k1);
    }

    @Test
    void anotherAlignmentShapeDtypeOrTransposeIsAnotherPlan() {
        LtMatmul.Key base = LtMatmul.Key.of(op(DType.BF16, ALIGNED, 8, 32), false, op(DType.BF16, ALIGNED, 32, 16), false,
                op(DType.F32, ALIGNED, 8, 16));
        assertNotEquals(base, LtMatmul.Key.of(op(DType.BF16, ALIGNED + 2, 8, 32), false, op(DType.BF16, ALIGNED, 32, 16), false,
                op(DType.F32, ALIGNED, 8, 16)), "a's alignment");
        assertEquals(2, LtMatmul.Key.of(op(DType.BF16, ALIGNED + 2, 8, 32), false, op(DType.BF16, ALIGNED, 32, 16), false,
                op(DType.F32, ALIGNED, 8, 16)).alignA());
        assertNotEquals(base, LtMatmul.Key.of(op(DType.BF16, ALIGNED, 8, 32), false, op(DType.BF16, ALIGNED, 32, 16), false,
                op(DType.F32, ALIGNED + 16, 8, 16)), "the output's alignment");
        assertNotEquals(base, LtMatmul.Key.of(op(DType.BF16, ALIGNED, 8, 32), false, op(DType.BF16, ALIGNED, 32, 16), false,
                op(DType.BF16, ALIGNED, 8, 16)), "the output dtype");
        assertNotEquals(base, LtMatmul.Key.of(op(DType.BF16, ALIGNED, 8, 32), false, op(DType.BF16, ALIGNED, 16, 32), true,
                op(DType.F32, ALIGNED, 8, 16)), "b transposed");
        assertNotEquals(base, LtMatmul.Key.of(new LtMatmul.Operand(Shape.of(8, 32), DType.BF16, ALIGNED, 48), false,
                op(DType.BF16, ALIGNED, 32, 16), false, op(DType.F32, ALIGNED, 8, 16)), "a column slice's row stride");
    }

    @Test
    void batchedProductsKeyTheirBatchTransposesAndASharedB() {
        LtMatmul.Key shared = LtMatmul.Key.of(op(DType.F32, ALIGNED, 4, 8, 32), false, op(DType.F32, ALIGNED, 32, 16), false,
                op(DType.F32, ALIGNED, 4, 8, 16));
        assertEquals(new LtMatmul.Key(4, 8, 16, 32, false, false, true, DType.F32, DType.F32, 256, 256, 256, 32, 16, 16), shared);
        LtMatmul.Key transA = LtMatmul.Key.of(op(DType.F32, ALIGNED, 4, 32, 8), true, op(DType.F32, ALIGNED, 4, 32, 16), false,
                op(DType.F32, ALIGNED, 4, 8, 16));
        assertEquals(new LtMatmul.Key(4, 8, 16, 32, true, false, false, DType.F32, DType.F32, 256, 256, 256, 8, 16, 16), transA);
        assertEquals(256, LtMatmul.alignment(0x1000));
        assertEquals(16, LtMatmul.alignment(0x1010));
        assertEquals(1, LtMatmul.alignment(0x1001));
    }
}
