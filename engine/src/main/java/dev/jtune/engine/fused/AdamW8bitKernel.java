package dev.jtune.engine.fused;

import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Device;
import dev.jtune.engine.DeviceMismatchException;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.Adam8bitKernels;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.optim.FlatLayout;
import dev.jtune.engine.quant.DynamicMap;

import java.util.ArrayList;
import java.util.List;

/**
 * bitsandbytes' blockwise 8-bit AdamW step ({@code optim.AdamW8bit} is the optimizer) over one flat group: cpu
 * reference, cuda launcher (kernels/adamw8bit.cu through {@link Adam8bitKernels}) and meta rule, registered once as
 * {@link #OP}.
 *
 * <p>The published algorithm ({@code optimizer_update_8bit_blockwise}, kernel {@code kOptimizerStatic8bit2StateBlockwise}
 * with blocks of {@link #BLOCK}), per block b of a parameter's elements (each parameter quantized from its own first
 * element; a short last block is padded, see {@link #PAD_CODE_M}), with t the step and {@code bc_k = 1 - beta_k^t}:
 * <ol>
 * <li>for each element with a finite gradient: {@code g = grad * gradScale}; dequantize {@code m = SIGNED[qm] *
 *     absmaxM[b]} and {@code v = UNSIGNED[qv] * absmaxV[b]}; {@code v = beta2 v + (1 - beta2) g^2}; {@code m = beta1
 *     m + (1 - beta1) g}. An element whose gradient is NaN or infinite gets {@code m = v = 0} and no update.</li>
 * <li>the new {@code absmaxM[b]}, {@code absmaxV[b]}: the largest |m|, |v| of the block (its padding included; NaN
 *     ignored).</li>
 * <li>the parameter, from the full-precision new m and v: {@code p += -lr sqrt(bc2) / bc1 * m / (sqrt(v) + sqrt(bc2)
 *     eps)}, then, when the weight decay is positive, {@code p *= 1 - lr wd} (decoupled, applied after the Adam
 *     step: bitsandbytes' order, not torch's, a difference of order lr^2 wd).</li>
 * <li>requantize: {@code qm = SIGNED.quantize(m / absmaxM[b])}, moved one code toward m's sign when the code's value
 *     has the other sign bit (bitsandbytes keeps the moment's sign, so a tiny negative m never becomes +0);
 *     {@code qv = UNSIGNED.quantize(v / absmaxV[b])} ({@link DynamicMap#quantize}).</li>
 * </ol>
 * bitsandbytes starts from codes 0 and absmax 0 (every moment 0) and updates a 16-bit weight in place; here a 16-bit
 * weight is updated through an fp32 master copy (the weight gets the master rounded once, as {@code optim.AdamW}).
 * bitsandbytes' kernel computes in fp32 with fast intrinsics ({@code __fdividef} for m / absmax and the update's
 * ratio, {@code __powf} bias corrections, {@code 1.0f - beta} in fp32); the reference here is the same algorithm in
 * double, the cuda kernel the same in fp32 with IEEE division. ARCHITECTURE.md lists each rule with its place in
 * bitsandbytes' source.
 */
public interface AdamW8bitKernel {
    /** Elements per quantization block: bitsandbytes' blockwise-optimizer block, {@link FlatLayout#ALIGNMENT}. */
    int BLOCK = FlatLayout.ALIGNMENT;
    /** The first-moment code bitsandbytes loads for the padding of a short last block (a tiny positive value). */
    int PAD_CODE_M = 128;
    /** The second-moment code of the padding: 0, the unsigned map's zero. */
    int PAD_CODE_V = 0;
    /** The signed map's code of +0 (127). */
    int SIGNED_ZERO_CODE = DynamicMap.SIGNED.zeroCode();

    /** The 8-bit state of one flat group: codes U8 [numel] and block maxima F32 [numel / BLOCK] for each moment. */
    record State(Tensor m, Tensor absmaxM, Tensor v, Tensor absmaxV) {
        /**
         * The state of {@code numel} elements (a whole number of blocks) before the first step: codes 0 and maxima 0,
         * every moment 0, as bitsandbytes starts.
         */
        public static State zeros(long numel, Device device, Placement placement) {
            Shape n = Shape.of(numel);
            Shape blocks = Shape.of(numel / BLOCK);
            return new State(Tensor.zeros(n, DType.U8, device, placement), Tensor.zeros(blocks, DType.F32, device, placement),
                    Tensor.zeros(n, DType.U8, device, placement), Tensor.zeros(blocks, DType.F32, device, placement));
        }
    }

    /**
     * One step of the algorithm above over a flat group: the parameters of {@code params}' layout (the cuda kernel
     * finds a block's parameter in its device table, by a binary search over the offsets; the table is rewritten
     * when a parameter's storage moved, as for the fp32 flat step). grad: the flat gradient, [layout.numel()] in
     * F32, BF16 or F16 (its alignment gaps are not read). master: null, or the group's flat F32 master copy [layout.numel()], which the
     * step reads and writes instead of the parameters and then rounds into them (required for 16-bit parameters).
     * Parameters: F32, BF16 or F16. gradScale: null or a one-element F32/F64 tensor on the device (a clip factor).
     * Every tensor on the parameters' device.
     */
    void step(ParameterTable params, Tensor master, Tensor grad, State state, AdamWStep step, Tensor gradScale);

    FusedOp<AdamW8bitKernel> OP = FusedOp.of("adamw8bit", new Cpu(), Cuda::new, new Meta());

    static AdamW8bitKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The operands' contract, checked by every backend. */
    static void check(ParameterTable params, Tensor master, Tensor grad, State state, Tensor gradScale) {
        long n = params.layout().numel();
        Device device = params.device();
        DType p = params.dtype();
        if (p != DType.F32 && p != DType.BF16 && p != DType.F16) {
            throw new DTypeException("AdamW8bit: parameters must be F32, BF16 or F16, not " + p);
        }
        if (master == null && p != DType.F32) {
            throw new DTypeException("AdamW8bit: " + p + " parameters need an F32 master copy");
        }
        flat("grad", grad, n, null, device);
        if (grad.dtype() != DType.F32 && grad.dtype() != DType.BF16 && grad.dtype() != DType.F16) {
            throw new DTypeException("AdamW8bit: the gradient must be F32, BF16 or F16, not " + grad.describe());
        }
        if (master != null) {
            flat("master", master, n, DType.F32, device);
        }
        flat("m", state.m(), n, DType.U8, device);
        flat("v", state.v(), n, DType.U8, device);
        flat("absmaxM", state.absmaxM(), n / BLOCK, DType.F32, device);
        flat("absmaxV", state.absmaxV(), n / BLOCK, DType.F32, device);
        if (gradScale != null && (gradScale.numel() != 1 || !gradScale.device().equals(device))) {
            throw new ShapeException("AdamW8bit: gradScale " + gradScale.describe() + " must be one element on " + device);
        }
    }

    private static void flat(String what, Tensor t, long n, DType dtype, Device device) {
        if (t.shape().rank() != 1 || t.shape().dim(0) != n || !t.isContiguous() || (dtype != null && t.dtype() != dtype)) {
            throw new ShapeException("AdamW8bit: " + what + " " + t.describe() + " must be a contiguous [" + n + "]"
                    + (dtype == null ? "" : " " + dtype) + " buffer");
        }
        if (!t.device().equals(device)) {
            throw new DeviceMismatchException("AdamW8bit: " + what + " " + t.describe() + " is not on the parameters' " + device);
        }
    }

    /**
     * The first moment's code: {@link DynamicMap#SIGNED} quantization of x = m / absmax, then bitsandbytes' sign
     * rule: a code whose value's sign bit differs from m's moves one step toward m (up when m > 0, else down; the
     * byte wraps, as the kernel's does, which happens only in an all-zero block, where every code decodes to 0).
     */
    static int firstMomentCode(double m, double x) {
        return keepSign(m, DynamicMap.SIGNED.quantize(x));
    }

    /**
     * {@link #firstMomentCode}'s sign rule applied to the signed map's code {@code c} of m / absmax. The signed map
     * ascends with +0 at its zero code, so a value's sign bit is set exactly below that code (DynamicMapTest).
     */
    static int keepSign(double m, int c) {
        boolean codeNegative = c < SIGNED_ZERO_CODE;
        boolean mNegative = Double.doubleToRawLongBits(m) < 0;
        if (codeNegative != mNegative) {
            c = m > 0 ? c + 1 : c - 1;
        }
        return c & 0xFF;
    }

    /** The entry holding flat element {@code first} (a block's start), or -1 in a gap: the kernel's binary search. */
    static int entryOf(long[] offsets, long[] ends, long first) {
        int lo = 0;
        int hi = offsets.length - 1;
        int found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (offsets[mid] <= first) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return found >= 0 && first < ends[found] ? found : -1;
    }

    /** NaN-ignoring maximum (C's fmax, as the kernel's reduction). */
    private static double fmax(double a, double b) {
        return Double.isNaN(a) ? b : Double.isNaN(b) ? a : Math.max(a, b);
    }

    /**
     * The double-precision reference of the published algorithm: every quantity in double from the stored fp32 and
     * 8-bit values (a dequantized moment is the exact product of two floats), the hyperparameters' derived scalars in
     * double; stored values (absmax F32, master F32, parameters) rounded once, codes chosen by
     * {@link DynamicMap#quantize(double)} for m / (the stored fp32 absmax).
     */
    final class Cpu implements AdamW8bitKernel {
        private Cpu() {
        }

        @Override
        public void step(ParameterTable params, Tensor master, Tensor grad, State state, AdamWStep step, Tensor gradScale) {
            check(params, master, grad, state, gradScale);
            FlatLayout layout = params.layout();
            int entries = layout.entries().size();
            long[] offsets = new long[entries];
            long[] ends = new long[entries];
            List<Flat> weights = new ArrayList<>(entries);
            for (int i = 0; i < entries; i++) {
                offsets[i] = layout.entries().get(i).offset();
                ends[i] = layout.entries().get(i).end();
                weights.add(Flat.of(params.parameters().get(i)));
            }
            double scale = gradScale == null ? 1.0 : Flat.of(gradScale).get(0);
            double b1 = step.beta1();
            double b2 = step.beta2();
            double bc2Sqrt = Math.sqrt(step.biasCorrection2());
            double stepSize = -step.lr() * bc2Sqrt / step.biasCorrection1();
            double epsTerm = bc2Sqrt * step.eps();
            boolean decayOn = step.weightDecay() > 0;
            double decay = 1 - step.lr() * step.weightDecay();
            Flat gs = Flat.of(grad);
            Flat ms = master == null ? null : Flat.of(master);
            Flat qm = Flat.of(state.m());
            Flat qv = Flat.of(state.v());
            Flat am = Flat.of(state.absmaxM());
            Flat av = Flat.of(state.absmaxV());
            CpuLoops.rows(layout.numel() / BLOCK, b -> {
                long first = b * BLOCK;
                int e = entryOf(offsets, ends, first);
                if (e < 0) {
                    return;
                }
                Flat param = weights.get(e);
                double[] m = new double[BLOCK];
                double[] v = new double[BLOCK];
                boolean[] update = new boolean[BLOCK];
                double absM = am.get(b);
                double absV = av.get(b);
                double maxM = -Float.MAX_VALUE;
                double maxV = -Float.MAX_VALUE;
                for (int j = 0; j < BLOCK; j++) {
                    long i = first + j;
                    boolean valid = i < ends[e];
                    double g = valid ? gs.get(i) : 0.0;
                    if (Double.isFinite(g)) {
                        g *= scale;
                        int cm = valid ? (int) qm.getLong(i) : PAD_CODE_M;
                        int cv = valid ? (int) qv.getLong(i) : PAD_CODE_V;
                        m[j] = b1 * (DynamicMap.SIGNED.value(cm) * absM) + (1 - b1) * g;
                        v[j] = b2 * (DynamicMap.UNSIGNED.value(cv) * absV) + (1 - b2) * g * g;
                        update[j] = valid;
                    }
                    maxM = fmax(maxM, Math.abs(m[j]));
                    maxV = fmax(maxV, Math.abs(v[j]));
                }
                float newM = (float) maxM;
                float newV = (float) maxV;
                am.set(b, newM);
                av.set(b, newV);
                for (int j = 0; j < BLOCK && first + j < ends[e]; j++) {
                    long i = first + j;
                    long local = i - offsets[e];
                    if (update[j]) {
                        double p = ms != null ? ms.get(i) : param.get(local);
                        p += stepSize * (m[j] / (Math.sqrt(v[j]) + epsTerm));
                        if (decayOn) {
                            p *= decay;
                        }
                        if (ms != null) {
                            ms.set(i, p);
                            param.set(local, (float) p); // the weight gets the fp32 master, rounded once more
                        } else {
                            param.set(local, p);
                        }
                    }
                    qm.set(i, firstMomentCode(m[j], m[j] / newM));
                    qv.set(i, DynamicMap.UNSIGNED.quantize(v[j] / newV));
                }
            });
        }
    }

    /** kernels/adamw8bit.cu: a thread block per quantization block at a time, in fp32 (the scalars derived in double, rounded once). */
    final class Cuda implements AdamW8bitKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        @Override
        public void step(ParameterTable params, Tensor master, Tensor grad, State state, AdamWStep step, Tensor gradScale) {
            check(params, master, grad, state, gradScale);
            gpu.family(Adam8bitKernels.class, b -> new Adam8bitKernels(b.compiler(), b.stream(), b.context(), b.allocator()))
                    .adamw8bit(params, master, grad, state, step, gradScale);
        }
    }

    /**
     * No per-call workspace. The cuda family's resident code tables (2 x 256 floats, allocated once per GPU) are not
     * modelled, like the NF4 tables.
     */
    final class Meta implements AdamW8bitKernel {
        private Meta() {
        }

        @Override
        public void step(ParameterTable params, Tensor master, Tensor grad, State state, AdamWStep step, Tensor gradScale) {
            check(params, master, grad, state, gradScale);
        }
    }
}
