package dev.jtune.gemma.vision;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The two layout-heavy pieces of the vision path against loops written from their definitions, in float64 on the cpu:
 * the patch embedding is torch's Conv2d with stride = kernel (patches in row-major order), and the projector's pooling
 * is AvgPool2d over the patch grid (tokens in row-major order) before the (1 + w) RMSNorm and the [vision, text]
 * product. Non-square inputs and unequal sizes catch transposed axes.
 */
class VisionLayoutTest {
    private static final Gemma3VisionConfig CONFIG = new Gemma3VisionConfig(6, 12, 1, 2, 3, 12, 3, 1e-6, "gelu_pytorch_tanh", 4, 1, 2, 3);

    @Test
    void thePatchEmbeddingIsAStridedConvolution() {
        Random rnd = Seeds.random();
        int c = 3;
        int p = 3;
        int hidden = 5;
        int h = 6;
        int w = 9; // a 2 x 3 grid of patches
        try (Scope s = Scope.open("patches")) {
            PatchEmbedding pe = new PatchEmbedding(c, p, hidden);
            double[] weight = rnd.doubles((long) hidden * c * p * p, -1, 1).toArray();
            double[] bias = rnd.doubles(hidden, -1, 1).toArray();
            double[] pixels = rnd.doubles(2L * c * h * w, -1, 1).toArray();
            pe.localParameters().get("weight").set(Tensor.fromArray(weight, Shape.of(hidden, c, p, p), DType.F64, Device.CPU));
            pe.localParameters().get("bias").set(Tensor.fromArray(bias, Shape.of(hidden), DType.F64, Device.CPU));
            double[] out = pe.forward(Tensor.fromArray(pixels, Shape.of(2, c, h, w), DType.F64, Device.CPU)).toDoubleArray();
            int gh = h / p;
            int gw = w / p;
            for (int b = 0; b < 2; b++) {
                for (int gy = 0; gy < gh; gy++) {
                    for (int gx = 0; gx < gw; gx++) {
                        for (int o = 0; o < hidden; o++) {
                            double sum = bias[o];
                            for (int ch = 0; ch < c; ch++) {
                                for (int ky = 0; ky < p; ky++) {
                                    for (int kx = 0; kx < p; kx++) {
                                        sum += weight[((o * c + ch) * p + ky) * p + kx]
                                                * pixels[((b * c + ch) * h + gy * p + ky) * w + gx * p + kx];
                                    }
                                }
                            }
                            int n = gy * gw + gx;
                            assertEquals(sum, out[(b * gh * gw + n) * hidden + o], 1e-12, "image " + b + " patch " + n + " channel " + o);
                        }
                    }
                }
            }
        }
    }

    @Test
    void theProjectorPoolsWindowsInRowMajorOrderThenNormsAndProjects() {
        Random rnd = Seeds.random();
        int d = CONFIG.hiddenSize();
        int text = 7;
        int grid = CONFIG.patchesPerSide(); // 4 patches a side, pooled 2 x 2 into 2 x 2 tokens
        int side = CONFIG.tokensPerSide();
        int k = CONFIG.poolSize();
        try (Scope s = Scope.open("projector")) {
            MultiModalProjector proj = new MultiModalProjector(CONFIG, text);
            double[] wp = rnd.doubles((long) d * text, -1, 1).toArray();
            double[] wn = rnd.doubles(d, -0.5, 0.5).toArray();
            double[] x = rnd.doubles(2L * grid * grid * d, -1, 1).toArray();
            proj.projectionParameter().set(Tensor.fromArray(wp, Shape.of(d, text), DType.F64, Device.CPU));
            proj.norm().weightParameter().set(Tensor.fromArray(wn, Shape.of(d), DType.F64, Device.CPU));
            double[] out = proj.forward(Tensor.fromArray(x, Shape.of(2, (long) grid * grid, d), DType.F64, Device.CPU)).toDoubleArray();
            for (int b = 0; b < 2; b++) {
                for (int ty = 0; ty < side; ty++) {
                    for (int tx = 0; tx < side; tx++) {
                        double[] pooled = new double[d];
                        for (int ky = 0; ky < k; ky++) {
                            for (int kx = 0; kx < k; kx++) {
                                int n = (ty * k + ky) * grid + tx * k + kx;
                                for (int j = 0; j < d; j++) {
                                    pooled[j] += x[(b * grid * grid + n) * d + j] / (k * k);
                                }
                            }
                        }
                        double ms = 0;
                        for (double v : pooled) {
                            ms += v * v / d;
                        }
                        double inv = 1 / Math.sqrt(ms + CONFIG.layerNormEps());
                        int token = ty * side + tx;
                        for (int o = 0; o < text; o++) {
                            double sum = 0;
                            for (int j = 0; j < d; j++) {
                                sum += pooled[j] * inv * (1 + wn[j]) * wp[j * text + o];
                            }
                            assertEquals(sum, out[(b * side * side + token) * text + o], 1e-12, "image " + b + " token " + token + " feature " + o);
                        }
                    }
                }
            }
        }
    }
}
