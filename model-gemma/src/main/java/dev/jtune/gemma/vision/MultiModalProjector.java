package dev.jtune.gemma.vision;

import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.nn.RmsNorm;
import dev.jtune.engine.ops.RmsNorm.Scale;
import dev.jtune.gemma.config.Gemma3VisionConfig;

/**
 * Gemma 3's {@code multi_modal_projector}: the tower's patch grid average-pooled to {@code mm_tokens_per_image} tokens
 * (windows of {@code poolSize x poolSize} patches, tokens in row-major order), Gemma's RMSNorm (1 + w, the vision eps),
 * then {@code x W} with {@code mm_input_projection_weight} stored as [vision_hidden, text_hidden]: no transpose, no bias.
 */
public final class MultiModalProjector extends Module {
    private final Parameter projection;
    private final RmsNorm norm;
    private final int side;
    private final int pool;

    public MultiModalProjector(Gemma3VisionConfig c, long textHidden) {
        projection = parameter("mm_input_projection_weight", Shape.of(c.hiddenSize(), textHidden));
        norm = child("mm_soft_emb_norm", new RmsNorm(c.hiddenSize(), c.layerNormEps(), Scale.ONE_PLUS_WEIGHT));
        side = c.tokensPerSide();
        pool = c.poolSize();
    }

    public Parameter projectionParameter() {
        return projection;
    }

    public RmsNorm norm() {
        return norm;
    }

    /** The tower's output [B, patches, vision_hidden] to image features [B, mm_tokens_per_image, text_hidden]. */
    public Tensor forward(Tensor vision) {
        long b = vision.dim(0);
        long d = vision.dim(2);
        long grid = (long) side * pool;
        if (vision.rank() != 3 || vision.dim(1) != grid * grid) {
            throw new ShapeException("multi_modal_projector: " + vision.shape() + " must be [B, " + grid * grid + ", hidden]");
        }
        // [B, side, pool, side, pool, D]: rows of windows; the mean over both window axes is AvgPool2d's
        Tensor windows = vision.contiguous().reshape(b, side, pool, side, pool, d);
        Tensor pooled = windows.mean(4).mean(2).reshape(b, (long) side * side, d);
        return norm.forward(pooled).matmul(projection.value());
    }
}
