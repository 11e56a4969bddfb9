package dev.jtune.engine.fused;

import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.NormKernels;
import dev.jtune.engine.meta.MetaBackend;

import java.util.stream.IntStream;

/**
 * RMSNorm then RoPE in one pass, the q/k path ({@code ops.RmsNormRope} is the op): the contract, the cpu reference,
 * the cuda launcher (kernels/norm.cu through {@link NormKernels}) and the meta rule, registered once as {@link #OP}.
 *
 * <p>x [B, H, T, D] (D even) with unit stride on D and any strides on B, H and T (the projection's [B, T, H, D] read
 * in place); out [B, H, T, D] likewise; weight [D]; positions I32 [B, T] contiguous; rstd [B * T * H] (F32, F64 next to
 * F64 x) in (b, t, h) order. The values are the unfused ops': {@link RmsNormKernel#forward}'s, rounded to x's dtype as
 * its output is stored, then {@link RopeKernel#rotate}'s of that; bit for bit on the cpu, and on the GPU where the
 * kernel's multiply-adds are rope.cu's (norm.cu's rope_row says how it keeps them so).
 */
public interface RmsNormRopeKernel {

    void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                 Tensor rstd);

    /**
     * gy = the inverse rotation of gradOut rounded to x's dtype (the unfused rope's stored gradient), then
     * {@link RmsNormKernel#backward} of gy: gradX (strided as given, like x) and gradWeight [D] (rstd's dtype, summed
     * in a fixed order; null when not wanted).
     */
    void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling, Tensor gradOut,
                  Tensor gradX, Tensor gradWeight);

    FusedOp<RmsNormRopeKernel> OP = FusedOp.of("rmsNormRope", new Cpu(), Cuda::new, new Meta());

    static RmsNormRopeKernel on(Tensor t) {
        return OP.on(t);
    }

    /** Element offset of row (b, h, t) of a [B, H, T, D] tensor with unit stride on D. */
    private static long rowStart(Tensor x, long b, long h, long t) {
        return b * x.stride(0) + h * x.stride(1) + t * x.stride(2);
    }

    /**
     * The reference: each row in double, rounded to x's dtype where the unfused ops store (the normed row, the rotated
     * gradient), with the angles of {@link RopeKernel.Cpu}. Rows read whole before they are written.
     */
    final class Cpu implements RmsNormRopeKernel {
        private Cpu() {
        }

        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                            Tensor rstd) {
            long heads = x.dim(1);
            long t = x.dim(2);
            int d = CpuLoops.lastDim("rmsNormRope", x);
            double[] g = RmsNormKernel.Cpu.gains(weight, offsetOne, d);
            float[] invFreq = RopeKernel.Cpu.inverseFrequencies(base, scaling, d);
            Flat xs = Flat.of(x);
            Flat ps = Flat.of(positions);
            Flat os = Flat.of(out);
            Flat rs = Flat.of(rstd);
            DType dtype = x.dtype();
            CpuLoops.rows(x.numel() / Math.max(d, 1), row -> { // row = (b, t, h), rstd's order
                long h = row % heads;
                long bt = row / heads;
                long b = bt / t;
                long ti = bt % t;
                double[] v = xs.read(rowStart(x, b, h, ti), new double[d]);
                double ss = 0;
                for (double e : v) {
                    ss += e * e;
                }
                double r = 1 / Math.sqrt(ss / d + eps);
                rs.set(row, r);
                for (int j = 0; j < d; j++) {
                    v[j] = Numerics.roundTo(dtype, v[j] * r * g[j]); // the normed row as the unfused norm stores it
                }
                os.write(rowStart(out, b, h, ti), RopeKernel.Cpu.rotateRow(v, (float) ps.getLong(bt), invFreq, false));
            });
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling,
                             Tensor gradOut, Tensor gradX, Tensor gradWeight) {
            long heads = x.dim(1);
            long t = x.dim(2);
            int d = CpuLoops.lastDim("rmsNormRopeBackward", x);
            long rows = x.numel() / Math.max(d, 1);
            double[] g = RmsNormKernel.Cpu.gains(weight, offsetOne, d);
            float[] invFreq = RopeKernel.Cpu.inverseFrequencies(base, scaling, d);
            Flat xs = Flat.of(x);
            Flat ps = Flat.of(positions);
            Flat gos = Flat.of(gradOut);
            Flat gxs = Flat.of(gradX);
            Flat rs = Flat.of(rstd);
            DType dtype = x.dtype();
            // the rotated-back gradients of every row (b, t, h), rounded as the unfused rope's gradient is stored
            double[][] gy = new double[Math.toIntExact(rows)][];
            CpuLoops.rows(rows, row -> {
                long h = row % heads;
                long bt = row / heads;
                long b = bt / t;
                long ti = bt % t;
                double[] r = RopeKernel.Cpu.rotateRow(gos.read(rowStart(gradOut, b, h, ti), new double[d]), (float) ps.getLong(bt), invFreq, true);
                for (int j = 0; j < d; j++) {
                    r[j] = Numerics.roundTo(dtype, r[j]);
                }
                gy[(int) row] = r;
            });
            double[][] xr = new double[gy.length][];
            CpuLoops.rows(rows, row -> {
                long bt = row / heads;
                xr[(int) row] = xs.read(rowStart(x, bt / t, row % heads, bt % t), new double[d]);
            });
            if (gradWeight != null) {
                Flat gw = Flat.of(gradWeight);
                IntStream.range(0, d).parallel().forEach(j -> {
                    double s = 0;
                    for (int i = 0; i < gy.length; i++) {
                        s += gy[i][j] * xr[i][j] * rs.get(i);
                    }
                    gw.set(j, s);
                });
            }
            CpuLoops.rows(rows, row -> {
                long h = row % heads;
                long bt = row / heads;
                double[] gv = gy[(int) row];
                double[] xv = xr[(int) row];
                double r = rs.get(row);
                double dot = 0;
                for (int j = 0; j < d; j++) {
                    dot += gv[j] * g[j] * xv[j];
                }
                double c = r * r * dot / d;
                double[] out = new double[d];
                for (int j = 0; j < d; j++) {
                    out[j] = r * (g[j] * gv[j] - xv[j] * c);
                }
                gxs.write(rowStart(gradX, bt / t, h, bt % t), out);
            });
        }
    }

    /** kernels/norm.cu's rms_norm_rope: a warp a (b, t) row, every head of it; the weight gradient as RMSNorm's. */
    final class Cuda implements RmsNormRopeKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        private NormKernels kernels() {
            return RmsNormKernel.Cuda.normKernels(gpu);
        }

        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                            Tensor rstd) {
            kernels().rmsNormRope(x, weight, eps, offsetOne, positions, base, scaling, out, rstd);
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling,
                             Tensor gradOut, Tensor gradX, Tensor gradWeight) {
            kernels().rmsNormRopeBackward(x, weight, rstd, offsetOne, positions, base, scaling, gradOut, gradX, gradWeight);
        }
    }

    /** Outputs are the op's; the backward's weight-gradient lines are the workspace. */
    final class Meta implements RmsNormRopeKernel {
        private Meta() {
        }

        @Override
        public void forward(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                            Tensor rstd) {
            // no workspace
        }

        @Override
        public void backward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling,
                             Tensor gradOut, Tensor gradX, Tensor gradWeight) {
            if (gradWeight == null) {
                return;
            }
            MetaBackend meta = MetaBackend.instance();
            meta.workspace(NormKernels.normRopeWorkspaceBytes(x.dim(0) * x.dim(2), x.dim(3), x.dtype(), meta.multiprocessors())).close();
        }
    }
}
