package dev.jtune.gemma.vision;

import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;

/**
 * SigLIP's {@code patch_embedding}: a {@code p x p} convolution with stride {@code p} and a bias, parameters {@code weight}
 * [hidden, C, p, p] and {@code bias} [hidden] as torch's Conv2d stores them. Non-overlapping, so it is one product: the
 * image's patches as rows of (c, y, x) pixels [B * N, C p p] times the flattened kernels, patches in row-major order.
 */
public final class PatchEmbedding extends Module {
    private final Parameter weight;
    private final Parameter bias;
    private final int channels;
    private final int patch;

    PatchEmbedding(int channels, int patch, int hidden) {
        this.channels = channels;
        this.patch = patch;
        this.weight = parameter("weight", Shape.of(hidden, channels, patch, patch));
        this.bias = parameter("bias", Shape.of(hidden));
    }

    /** pixels [B, C, H, W] (H and W multiples of the patch) to [B, (H / p) (W / p), hidden]. */
    public Tensor forward(Tensor pixels) {
        if (pixels.rank() != 4 || pixels.dim(1) != channels || pixels.dim(2) % patch != 0 || pixels.dim(3) % patch != 0) {
            throw new ShapeException("patch_embedding: pixels " + pixels.shape() + " must be [B, " + channels
                    + ", H, W] with H and W multiples of " + patch);
        }
        long b = pixels.dim(0);
        long gh = pixels.dim(2) / patch;
        long gw = pixels.dim(3) / patch;
        long hidden = weight.shape().dim(0);
        Tensor patches = pixels.reshape(b, channels, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5).contiguous()
                .reshape(b * gh * gw, (long) channels * patch * patch);
        Tensor kernels = weight.value().reshape(hidden, (long) channels * patch * patch);
        return patches.matmul(kernels.transpose(0, 1)).add(bias.value()).reshape(b, gh * gw, hidden);
    }
}
