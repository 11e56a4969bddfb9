package dev.jtune.engine.dist;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.optim.GradientBuffer;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Buckets summed while backward runs: through a world of one that records each overlapped sum with the bucket's values
 * at the call (the cpu runs each op as it is queued, so those are what the sum would read), the buckets are summed in
 * one fixed order every step, during backward once the counts are learned, each only when its gradient is complete.
 */
class BucketedGradientSumTest {
    private static final int N = 16; // [16, 16] weights: 256 elements, one flat-layout slot each

    /** A world of one that keeps, per overlapped sum, the bucket's first element's offset and its values then. */
    private static final class Recording implements Collectives {
        final List<Tensor> pieces = new ArrayList<>();
        final List<float[]> seen = new ArrayList<>();
        int awaited;
        /** In-line all-reduces: the late flags, then each late parameter's contributions. */
        final List<Long> inline = new ArrayList<>();

        @Override public int rank() { return 0; }
        @Override public int worldSize() { return 1; }
        @Override public void allReduce(Tensor t, Reduction op) {
            inline.add(t.numel());
        }
        @Override public void allReduceOverlapped(Tensor t, Reduction op) {
            pieces.add(t);
            seen.add(t.toFloatArray());
        }
        @Override public void awaitOverlapped() { awaited++; }
        @Override public void reduceScatter(Tensor in, Tensor out, Reduction op) { throw new UnsupportedOperationException(); }
        @Override public void allGather(Tensor in, Tensor out) { throw new UnsupportedOperationException(); }
        @Override public void broadcast(Tensor t, int root) { }
        @Override public void abort() { }
        @Override public void close() { }

        void clear() {
            pieces.clear();
            seen.clear();
            inline.clear();
        }
    }

    /** Shared with {@link ShardedGradientsTest}. */
    record Net(Tensor x, List<Tensor> w) {
        /**
         * x W0 -> square -> W1 (checkpointed) -> square -> W2 -> W3, summed, plus a second use of W0 (sum(x W0), or with
         * {@code extraW0}, a third) so W0's gradient comes in two or three contributions.
         */
        Tensor loss(boolean extraW0) {
            Tensor h = square(x.matmul(w.get(0)));
            h = Autograd.checkpoint(t -> square(t[0].matmul(w.get(1))), h);
            Tensor out = h.matmul(w.get(2)).matmul(w.get(3)).reshape(-1).sum(0);
            out = out.add(x.matmul(w.get(0)).reshape(-1).sum(0));
            if (extraW0) {
                out = out.add(x.mul(x).matmul(w.get(0)).reshape(-1).sum(0));
            }
            return out;
        }
    }

    private static Tensor square(Tensor t) {
        return t.mul(t);
    }

    static Net net() {
        Tensor x = Tensor.randn(Shape.of(4, N), DType.F32, Device.CPU, 11);
        List<Tensor> w = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            w.add(Ops.scale(Tensor.randn(Shape.of(N, N), DType.F32, Device.CPU, 20 + i), 0.3).requiresGrad(true));
        }
        return new Net(x, w);
    }

    private static GradientBuffer buffer(Net n) {
        SequencedMap<String, Tensor> named = new LinkedHashMap<>();
        for (int i = 0; i < n.w().size(); i++) {
            named.put("w" + i, n.w().get(i));
        }
        return GradientBuffer.attach(named);
    }

    /** One step as the trainer runs it on one rank: {@code micro} backwards, the last armed, then finish. */
    private static void step(Net n, GradientBuffer buf, BucketedGradientSum sum, int micro) {
        buf.zero();
        for (int m = 0; m < micro; m++) {
            if (m == micro - 1) {
                sum.arm();
            }
            n.loss(false).backward();
        }
        sum.finish();
    }

    @Test
    void bucketsAreCutFromEachBuffersEndAndSummedLatestUsedFirst() {
        assertEquals(List.of(new BucketedGradientSum.Piece(768, 1024), new BucketedGradientSum.Piece(512, 768),
                new BucketedGradientSum.Piece(256, 512), new BucketedGradientSum.Piece(0, 256)), BucketedGradientSum.pieces(1024, 4, 1024));
        assertEquals(List.of(new BucketedGradientSum.Piece(700, 1000), new BucketedGradientSum.Piece(400, 700),
                new BucketedGradientSum.Piece(100, 400), new BucketedGradientSum.Piece(0, 100)), BucketedGradientSum.pieces(1000, 2, 600));
        try (Scope s = Scope.open("order")) {
            Net n = net();
            GradientBuffer buf = buffer(n);
            Recording world = new Recording();
            // the use order puts w1 last: its bucket is summed first
            try (BucketedGradientSum sum = new BucketedGradientSum(world, List.of(buf), 1024,
                    List.of(n.w().get(0), n.w().get(2), n.w().get(3), n.w().get(1)))) {
                sum.finish();
                assertEquals(List.of(256L, 256L, 256L, 256L), sum.bucketLengths());
                List<Long> offsets = world.pieces.stream().map(t -> (t.offset() - buf.flat().offset())).toList();
                assertEquals(List.of(256L, 768L, 512L, 0L), offsets, "w1, w3, w2, w0");
                assertEquals(1, world.awaited);
            }
        }
    }

    @Test
    void onceLearnedEveryBucketIsSummedDuringBackwardWhenItsGradientIsComplete() {
        try (Scope s = Scope.open("overlap")) {
            Net n = net();
            GradientBuffer buf = buffer(n);
            Recording world = new Recording();
            try (BucketedGradientSum sum = new BucketedGradientSum(world, List.of(buf), 1024, n.w())) {
                step(n, buf, sum, 2);
                assertEquals(0, sum.summedDuringBackward(), "the first step learns the counts: every sum after backward");
                List<Long> firstOrder = world.pieces.stream().map(Tensor::offset).toList();
                assertEquals(4, firstOrder.size());
                for (int stepNo = 2; stepNo <= 3; stepNo++) {
                    world.clear();
                    step(n, buf, sum, stepNo); // 2 then 3 micro-batches: only the last is armed
                    assertEquals(4, sum.summedDuringBackward(), "step " + stepNo + ": every bucket (w0's at backward's last contribution)");
                    assertEquals(firstOrder, world.pieces.stream().map(Tensor::offset).toList(), "the same order every step");
                    for (int k = 0; k < world.pieces.size(); k++) {
                        assertArrayEquals(world.pieces.get(k).toFloatArray(), world.seen.get(k), 0f,
                                "step " + stepNo + ": bucket " + k + " was complete when it was summed");
                    }
                }
            }
        }
    }

    @Test
    void aRankThatRanNoBackwardSumsEveryBucketInTheSameOrder() {
        try (Scope s = Scope.open("idle")) {
            Net n = net();
            GradientBuffer buf = buffer(n);
            Recording busy = new Recording();
            Recording idle = new Recording();
            try (BucketedGradientSum a = new BucketedGradientSum(busy, List.of(buf), 1024, n.w());
                 BucketedGradientSum b = new BucketedGradientSum(idle, List.of(buf), 1024, n.w())) {
                step(n, buf, a, 1);
                busy.clear();
                step(n, buf, a, 1);
                b.finish();
                assertEquals(0, b.summedDuringBackward());
                assertEquals(busy.pieces.stream().map(Tensor::offset).toList(), idle.pieces.stream().map(Tensor::offset).toList());
            }
        }
    }

    @Test
    void aContributionToABucketAlreadySummedGoesAsideAndIsSummedAfter() {
        try (Scope s = Scope.open("late")) {
            Net plain = net(); // the same weights: every gradient of a plain backward of the longer graph
            plain.loss(true).backward();
            Net n = net();
            GradientBuffer buf = buffer(n);
            Recording world = new Recording();
            try (BucketedGradientSum sum = new BucketedGradientSum(world, List.of(buf), 1024, n.w())) {
                step(n, buf, sum, 1);
                assertEquals(List.of(), world.inline, "the first step: no rank can have late contributions");
                // w0 now has three uses: its bucket is summed at its second contribution, then a third comes
                buf.zero();
                world.clear();
                sum.arm();
                n.loss(true).backward();
                sum.finish();
                assertEquals(1, sum.lateSums());
                assertEquals(List.of(4L, (long) N * N), world.inline, "the ranks' late flags, then w0's late contributions");
                for (int i = 0; i < 4; i++) {
                    assertArrayEquals(plain.w().get(i).grad().toFloatArray(), n.w().get(i).grad().toFloatArray(), 0f,
                            "w" + i + " as a plain backward of the same graph");
                }
                // learned: three contributions; the next such step sums w0's bucket after its third
                buf.zero();
                world.clear();
                sum.arm();
                n.loss(true).backward();
                sum.finish();
                assertEquals(1, sum.lateSums(), "no more late contributions");
                assertEquals(List.of(4L), world.inline);
                assertEquals(4, sum.summedDuringBackward());
            }
        }
    }

    @Test
    void closingStopsListening() {
        try (Scope s = Scope.open("close")) {
            Net n = net();
            GradientBuffer buf = buffer(n);
            Recording world = new Recording();
            BucketedGradientSum sum = new BucketedGradientSum(world, List.of(buf), 1024, n.w());
            step(n, buf, sum, 1);
            sum.arm();
            sum.close();
            world.clear();
            n.loss(false).backward();
            assertTrue(world.pieces.isEmpty(), "no sums once closed");
        }
    }
}
