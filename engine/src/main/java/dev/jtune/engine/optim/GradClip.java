package dev.jtune.engine.optim;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.BinaryOp;
import dev.jtune.engine.fused.GradClipKernel;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * torch.nn.utils.clip_grad_norm_: scales every gradient by {@code min(1, maxNorm / (norm + 1e-6))} where norm is
 * the L2 norm of all gradients together. Done on the device; reading the norm is the only host sync, and only
 * when {@link GradNorm#value()} is asked for. Over a list of parameters (one launch per gradient) or over flat
 * {@link GradientBuffer}s (one per buffer): the two agree up to the fp32 sum's grouping.
 */
public final class GradClip {
    private GradClip() {
    }

    /** The global norm, as sums of squares per device (F32 [1] each), read lazily. */
    public record GradNorm(List<Tensor> sumsOfSquares) {
        public double value() {
            double total = 0;
            for (Tensor t : sumsOfSquares) {
                total += t.item();
            }
            return Math.sqrt(total);
        }
    }

    /** The global norm of the gradients of {@code params} (on one device), without changing them. */
    public static GradNorm norm(List<Tensor> params) {
        try (Autograd.GradMode off = Autograd.noGrad()) {
            return new GradNorm(List.copyOf(sumsOfSquares(params).values()));
        }
    }

    /** Clips the gradients of {@code params} in place (on one device); returns the norm before clipping. */
    public static GradNorm clipGradNorm(List<Tensor> params, double maxNorm) {
        if (!(maxNorm > 0)) {
            throw new IllegalArgumentException("clipGradNorm: maxNorm must be positive, got " + maxNorm);
        }
        Map<Device, Tensor> sums;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            sums = sumsOfSquares(params);
            for (Map.Entry<Device, Tensor> e : sums.entrySet()) {
                Tensor coef = coefficient(e.getValue(), e.getKey(), maxNorm);
                for (Tensor p : params) {
                    Tensor g = p.grad();
                    if (g != null) {
                        scale(g, coef);
                    }
                }
            }
        }
        return new GradNorm(List.copyOf(sums.values()));
    }

    /**
     * The global norm of the gradients a set of flat buffers holds (on one device), without changing them: one sum of
     * squares over each whole buffer (its alignment gaps are zero and add nothing).
     */
    public static GradNorm flatNorm(List<GradientBuffer> buffers) {
        try (Autograd.GradMode off = Autograd.noGrad()) {
            return new GradNorm(List.copyOf(flatSumsOfSquares(buffers).values()));
        }
    }

    /**
     * {@link #clipGradNorm} over flat buffers (on one device): per buffer one sum of squares, then one multiply of the
     * whole buffer by the clip factor (gaps stay zero). Returns the norm before clipping.
     */
    public static GradNorm clipFlatGradNorm(List<GradientBuffer> buffers, double maxNorm) {
        if (!(maxNorm > 0)) {
            throw new IllegalArgumentException("clipFlatGradNorm: maxNorm must be positive, got " + maxNorm);
        }
        Map<Device, Tensor> sums;
        try (Autograd.GradMode off = Autograd.noGrad()) {
            sums = flatSumsOfSquares(buffers);
            for (Map.Entry<Device, Tensor> e : sums.entrySet()) {
                Tensor coef = coefficient(e.getValue(), e.getKey(), maxNorm);
                for (GradientBuffer b : buffers) {
                    scale(b.flat(), coef);
                }
            }
        }
        return new GradNorm(List.copyOf(sums.values()));
    }

    /**
     * The global norm of gradients sharded over data-parallel ranks (ZeRO stage 2: each rank holds the summed gradient
     * of its parts, {@code shards}, flat, on one device, zero where they hold no element): this rank's sum of squares,
     * summed over the ranks by {@code sumOverRanks} (in place, on every rank alike), then with {@code maxNorm > 0} every
     * shard scaled by the clip factor, the same on every rank. Returns the norm before clipping.
     */
    public static GradNorm clipShards(List<Tensor> shards, double maxNorm, java.util.function.Consumer<Tensor> sumOverRanks) {
        if (shards.isEmpty()) {
            throw new IllegalArgumentException("clipShards: no gradient shards");
        }
        try (Autograd.GradMode off = Autograd.noGrad()) {
            Device device = shards.getFirst().device();
            Tensor ss = Tensor.zeros(Shape.of(1), DType.F32, device);
            for (Tensor g : shards) {
                if (!g.device().equals(device)) {
                    throw new UnsupportedOperationException("clipShards: gradient shards on several devices (" + device + ", " + g.device() + ")");
                }
                GradClipKernel.on(g).sumOfSquares(g, ss);
            }
            sumOverRanks.accept(ss);
            if (maxNorm > 0) {
                Tensor coef = coefficient(ss, device, maxNorm);
                for (Tensor g : shards) {
                    scale(g, coef);
                }
            }
            return new GradNorm(List.of(ss));
        }
    }

    /** {@code min(1, maxNorm / (sqrt(sumOfSquares) + 1e-6))}, F32 [1] on the device. */
    private static Tensor coefficient(Tensor sumOfSquares, Device device, double maxNorm) {
        Tensor coef = Tensor.empty(Shape.of(1), DType.F32, device);
        GradClipKernel.on(coef).clipCoefficient(sumOfSquares, maxNorm, coef);
        return coef;
    }

    /** {@code g *= coef} in g's dtype (the F32 factor rounded to it first). */
    private static void scale(Tensor g, Tensor coef) {
        Tensor c = g.dtype() == DType.F32 ? coef : coef.cast(g.dtype());
        Backends.of(g).binary(BinaryOp.MUL, g, c.expand(g.shape()), g);
    }

    /** Sum of squares of every gradient, per device (F32 [1]); one device only, for now. */
    private static Map<Device, Tensor> sumsOfSquares(List<Tensor> params) {
        Map<Device, Tensor> sums = new LinkedHashMap<>();
        for (Tensor p : params) {
            Tensor g = p.grad();
            if (g != null) {
                Tensor ss = sums.computeIfAbsent(g.device(), d -> Tensor.zeros(Shape.of(1), DType.F32, d));
                GradClipKernel.on(g).sumOfSquares(g.contiguous(), ss);
            }
        }
        return oneDevice(sums);
    }

    /** Sum of squares of every buffer, per device (F32 [1]). */
    private static Map<Device, Tensor> flatSumsOfSquares(List<GradientBuffer> buffers) {
        Map<Device, Tensor> sums = new LinkedHashMap<>();
        for (GradientBuffer b : buffers) {
            Tensor ss = sums.computeIfAbsent(b.device(), d -> Tensor.zeros(Shape.of(1), DType.F32, d));
            GradClipKernel.on(b.flat()).sumOfSquares(b.flat(), ss);
        }
        return oneDevice(sums);
    }

    private static Map<Device, Tensor> oneDevice(Map<Device, Tensor> sums) {
        if (sums.size() > 1) {
            throw new UnsupportedOperationException("clipGradNorm: gradients on several devices " + sums.keySet() + " are not supported yet");
        }
        return sums;
    }
}
