package dev.jtune.engine.cpu;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuLoops.Flat;

/** Softmax and log-softmax over the last axis, and their backwards; rows in parallel, each read whole first. */
final class CpuSoftmax {
    private CpuSoftmax() {
    }

    /** {@code exp(x - m) / s} or {@code x - m - log s}, with m the row's max and {@code s = sum exp(x - m)}. */
    static void softmax(Tensor x, boolean log, Tensor out) {
        int c = CpuLoops.lastDim("softmax", x);
        Flat xs = Flat.of(x);
        Flat os = Flat.of(out);
        CpuLoops.rows(x.numel() / Math.max(c, 1), i -> {
            double[] row = xs.read(i * c, new double[c]);
            double max = Double.NEGATIVE_INFINITY;
            for (double v : row) {
                max = Math.max(max, v);
            }
            double sum = 0;
            for (double v : row) {
                sum += Math.exp(v - max);
            }
            double logSum = Math.log(sum);
            for (int j = 0; j < c; j++) {
                row[j] = log ? row[j] - max - logSum : Math.exp(row[j] - max) / sum;
            }
            os.write(i * c, row);
        });
    }

    /** softmax: {@code gx = y (gy - sum gy y)}; log-softmax: {@code gx = gy - exp(y) sum gy}. */
    static void backward(Tensor out, Tensor gradOut, boolean log, Tensor gradX) {
        int c = CpuLoops.lastDim("softmaxBackward", out);
        Flat ys = Flat.of(out);
        Flat gys = Flat.of(gradOut);
        Flat gxs = Flat.of(gradX);
        CpuLoops.rows(out.numel() / Math.max(c, 1), i -> {
            double[] y = ys.read(i * c, new double[c]);
            double[] gy = gys.read(i * c, new double[c]);
            double s = 0;
            for (int j = 0; j < c; j++) {
                s += log ? gy[j] : gy[j] * y[j];
            }
            for (int j = 0; j < c; j++) {
                gy[j] = log ? gy[j] - Math.exp(y[j]) * s : y[j] * (gy[j] - s);
            }
            gxs.write(i * c, gy);
        });
    }
}
