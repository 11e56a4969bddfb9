package dev.jtune.engine.quant;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.DeviceMismatchException;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

/**
 * One weight quantized to NF4 as bitsandbytes' {@code quantize_4bit(..., blocksize=64, quant_type="nf4")} stores it
 * (see {@link Nf4} for the algorithm). With n = {@code shape.numel()}:
 * <ul>
 *   <li>{@code codes}: U8 [ceil(n/2)], two 4-bit codes per byte, element 2k in the high nibble and 2k+1 in the low
 *   one; when n is odd the last low nibble is padding (the code of 0 in that block);</li>
 *   <li>either {@code absmax}: F32 [ceil(n/64)], the scale of each block of 64 elements (the last block may be
 *   shorter), with {@code absmaxCodes} and {@code absmax2} null;</li>
 *   <li>or, double-quantized (QLoRA's {@code compress_statistics}), {@code absmax} null and the scales stored as
 *   {@code absmaxCodes}: U8 [ceil(n/64)] codes of bitsandbytes' signed dynamic map, {@code absmax2}: F32
 *   [ceil(n/64/256)] one scale per 256 block scales, and {@code offset}, the mean subtracted before: scale[b] =
 *   fp32(fp32(dynamicMap[absmaxCodes[b]] * absmax2[b / 256]) + offset).</li>
 * </ul>
 * {@code dtype} is the dtype of the weight that was quantized. All tensors live on one device; they belong to the
 * scope that was current when they were made ({@link #keep} moves them to the enclosing one).
 */
public record Nf4Tensor(Shape shape, DType dtype, Tensor codes, Tensor absmax, Tensor absmaxCodes, Tensor absmax2,
                        float offset) {

    /** Elements per NF4 block (one scale each). */
    public static final int BLOCK = 64;
    /** Block scales per block of the double quantization (one absmax2 each). */
    public static final int BLOCK2 = 256;

    public Nf4Tensor {
        if (shape == null || dtype == null || codes == null) {
            throw new IllegalArgumentException("Nf4Tensor: shape, dtype and codes are required");
        }
        long n = shape.numel();
        long blocks = Math.ceilDiv(n, BLOCK);
        require("codes", codes, DType.U8, Math.ceilDiv(n, 2));
        boolean plain = absmax != null;
        boolean nested = absmaxCodes != null || absmax2 != null;
        if (plain == nested || (nested && (absmaxCodes == null || absmax2 == null))) {
            throw new IllegalArgumentException("Nf4Tensor: give either absmax, or absmaxCodes with absmax2 (double "
                    + "quantization), got absmax " + absent(absmax) + ", absmaxCodes " + absent(absmaxCodes)
                    + ", absmax2 " + absent(absmax2));
        }
        if (plain) {
            require("absmax", absmax, DType.F32, blocks);
        } else {
            require("absmaxCodes", absmaxCodes, DType.U8, blocks);
            require("absmax2", absmax2, DType.F32, Math.ceilDiv(blocks, BLOCK2));
        }
        Device device = codes.device();
        for (Tensor t : new Tensor[] {absmax, absmaxCodes, absmax2}) {
            if (t != null && !t.device().equals(device)) {
                throw new DeviceMismatchException("Nf4Tensor: codes on " + device + " but " + t.describe());
            }
        }
    }

    private static void require(String what, Tensor t, DType dtype, long count) {
        if (t.dtype() != dtype || t.rank() != 1 || t.numel() != count || !t.isContiguous()) {
            throw new ShapeException("Nf4Tensor: " + what + " must be a contiguous " + dtype + " [" + count + "], got "
                    + t.describe());
        }
    }

    private static String absent(Tensor t) {
        return t == null ? "null" : "given";
    }

    public long numel() {
        return shape.numel();
    }

    public Device device() {
        return codes.device();
    }

    /** Whether the block scales are double-quantized (absmaxCodes, absmax2, offset) rather than plain fp32. */
    public boolean doubleQuant() {
        return absmax == null;
    }

    /** Bytes of the quantized form: codes and block scales (with the offset's 4 bytes when double-quantized). */
    public long storageBytes() {
        long bytes = codes.dtype().bytesFor(codes.numel());
        if (doubleQuant()) {
            bytes += absmaxCodes.numel() + 4L * absmax2.numel() + Float.BYTES;
        } else {
            bytes += 4L * absmax.numel();
        }
        return bytes;
    }

    /** {@link #storageBytes()} in bits per weight element: 4.5 with plain scales, about 4.127 double-quantized. */
    public double bitsPerWeight() {
        long n = numel();
        return n == 0 ? 0 : storageBytes() * 8.0 / n;
    }

    /** Moves every tensor to the scope enclosing {@code scope} (see {@link Scope#keep}); returns this. */
    public Nf4Tensor keep(Scope scope) {
        for (Tensor t : parts()) {
            scope.keep(t);
        }
        return this;
    }

    /** Frees the codes and scales now. */
    public void close() {
        for (Tensor t : parts()) {
            t.close();
        }
    }

    public boolean isClosed() {
        return codes.isClosed();
    }

    /** The tensors that store it, in order: codes, then absmax, or absmaxCodes and absmax2. */
    public Tensor[] parts() {
        return doubleQuant() ? new Tensor[] {codes, absmaxCodes, absmax2} : new Tensor[] {codes, absmax};
    }

    /** The same weight stored in {@code parts} (as {@link #parts()} orders them, same shapes and dtypes): a copy elsewhere. */
    public Nf4Tensor withParts(Tensor... parts) {
        if (parts.length != (doubleQuant() ? 3 : 2)) {
            throw new IllegalArgumentException("Nf4Tensor: " + (doubleQuant() ? 3 : 2) + " parts, got " + parts.length);
        }
        return doubleQuant() ? new Nf4Tensor(shape, dtype, parts[0], null, parts[1], parts[2], offset)
                : new Nf4Tensor(shape, dtype, parts[0], parts[1], null, null, 0);
    }

    @Override
    public String toString() {
        return "Nf4Tensor" + shape + " (from " + dtype + ") on " + device() + (doubleQuant() ? ", double-quantized" : "")
                + String.format(java.util.Locale.ROOT, ", %.3f bits/weight", bitsPerWeight());
    }

    /** The dtypes {@link Nf4#dequantizeInto} writes. */
    static void checkOutputDtype(String op, DType dtype) {
        if (dtype != DType.BF16 && dtype != DType.F16 && dtype != DType.F32) {
            throw new DTypeException(op + ": NF4 dequantizes to BF16, F16 or F32, not " + dtype);
        }
    }
}
