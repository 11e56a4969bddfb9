package dev.jtune.gemma.vision;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.JtuneException;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.config.Gemma3VisionConfig;

import java.awt.image.BufferedImage;
import java.awt.image.Raster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Gemma3ImageProcessor's path from an image file to {@code pixel_values}, as HF's (PIL) processor does it: decode
 * (the JDK's ImageIO: PNG, JPEG, GIF, BMP), convert to RGB (alpha dropped, as PIL's {@code convert("RGB")}), resize to
 * the configured square with PIL's bilinear filter (antialiased when shrinking: the triangle's support scales with the
 * reduction; 8-bit fixed-point coefficients, the horizontal pass first and rounded to 8 bits before the vertical, as
 * PIL's Resample.c), rescale by 1/255 and normalize with mean and std 0.5: [3, S, S] channel-first float32.
 * Pan-and-scan is not built (HF's default is off); {@link #checkSettings} refuses a checkpoint that asks for it.
 */
public final class ImagePreprocessor {
    /** PIL's code of its bilinear filter ({@code Image.Resampling.BILINEAR}), as preprocessor configs name it. */
    private static final int PIL_BILINEAR = 2;

    /** PIL's fixed-point precision for 8-bit images: 32 - 8 - 2 bits. */
    private static final int PRECISION_BITS = 22;

    private final int size;

    public ImagePreprocessor(Gemma3VisionConfig config) {
        this(config.imageSize());
    }

    public ImagePreprocessor(int size) {
        if (size <= 0) {
            throw new IllegalArgumentException("image size must be positive, got " + size);
        }
        this.size = size;
    }

    /** The file beside a checkpoint that holds its image processor's settings. */
    public static final String CONFIG_FILE = "preprocessor_config.json";

    /**
     * Refuses a checkpoint whose {@link #CONFIG_FILE} (when it has one) asks for what this preprocessor does not do:
     * pan-and-scan ({@code do_pan_and_scan: true}: HF crops large images into extra views, each its own image tokens),
     * another square size than the tower's, another filter than bilinear, or another mean and std than 0.5. Absent settings take HF's defaults,
     * which are this preprocessor's.
     */
    public static void checkSettings(Path modelDir, Gemma3VisionConfig config) {
        Path file = modelDir.resolve(CONFIG_FILE);
        if (!Files.isRegularFile(file)) {
            return;
        }
        com.fasterxml.jackson.databind.JsonNode c;
        try {
            c = new com.fasterxml.jackson.databind.ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new dev.jtune.gemma.config.ConfigException(file.toString(), null, "unreadable: " + e.getMessage(), e);
        }
        if (c.path("do_pan_and_scan").asBoolean(false)) {
            throw new dev.jtune.gemma.config.ConfigException(file.toString(), "do_pan_and_scan", "true asks for pan-and-scan (extra crops"
                    + " of large images, each its own image tokens), which jtune does not build: each image is resized whole to "
                    + config.imageSize() + " px; set it to false to train as HF does without it");
        }
        for (String side : new String[] {"height", "width"}) {
            com.fasterxml.jackson.databind.JsonNode v = c.path("size").path(side);
            if (!v.isMissingNode() && !v.isNull() && v.asInt() != config.imageSize()) {
                throw new dev.jtune.gemma.config.ConfigException(file.toString(), "size." + side, v.asInt() + " px, but the vision tower"
                        + " takes " + config.imageSize() + " (config.json's vision_config.image_size): jtune resizes to the tower's size only");
            }
        }
        com.fasterxml.jackson.databind.JsonNode resample = c.path("resample");
        if (resample.isNumber() && resample.asInt() != PIL_BILINEAR) {
            throw new dev.jtune.gemma.config.ConfigException(file.toString(), "resample", resample.asInt() + " is not PIL's bilinear ("
                    + PIL_BILINEAR + "), the only filter jtune resizes with");
        }
        for (String field : new String[] {"image_mean", "image_std"}) {
            com.fasterxml.jackson.databind.JsonNode v = c.path(field);
            if (v.isArray()) {
                for (com.fasterxml.jackson.databind.JsonNode x : v) {
                    if (x.asDouble() != 0.5) {
                        throw new dev.jtune.gemma.config.ConfigException(file.toString(), field, v + ": jtune normalizes with Gemma 3's 0.5 only");
                    }
                }
            }
        }
    }

    /** An image that could not be read or decoded. */
    public static final class ImageException extends JtuneException {
        public ImageException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** pixel_values [n, 3, S, S] float32 on {@code device} for the image files, in order. */
    public Tensor pixelValues(List<Path> files, Device device) {
        float[] all = new float[files.size() * 3 * size * size];
        for (int i = 0; i < files.size(); i++) {
            float[] one = normalized(resize(rgb(files.get(i))));
            System.arraycopy(one, 0, all, i * one.length, one.length);
        }
        return Tensor.fromArray(all, Shape.of(files.size(), 3, size, size), DType.F32, device);
    }

    /** An RGB image: width, height and 8-bit samples, row-major, interleaved r, g, b. */
    public record Rgb(int width, int height, byte[] samples) {
        public Rgb {
            if ((long) width * height * 3 != samples.length) {
                throw new IllegalArgumentException(width + " x " + height + " RGB needs " + (long) width * height * 3 + " samples, got " + samples.length);
            }
        }

        int at(int x, int y, int c) {
            return samples[(y * width + x) * 3 + c] & 0xFF;
        }
    }

    /** Decodes {@code file} to RGB; an error naming the file when it is missing or not a decodable image. */
    public static Rgb rgb(Path file) {
        BufferedImage img;
        try {
            if (!Files.isRegularFile(file)) {
                throw new ImageException("image " + file + ": no such file", null);
            }
            img = javax.imageio.ImageIO.read(file.toFile());
        } catch (IOException | RuntimeException e) {
            if (e instanceof ImageException ie) {
                throw ie;
            }
            throw new ImageException("image " + file + ": cannot be decoded (" + e.getMessage() + ")", e);
        }
        if (img == null) {
            throw new ImageException("image " + file + ": not an image format this runtime decodes (PNG, JPEG, GIF, BMP)", null);
        }
        return rgb(img);
    }

    /**
     * The RGB samples of a decoded image. Gray images are read from the raster itself: {@code getRGB} would convert
     * linear gray to sRGB, where PIL replicates the value.
     */
    public static Rgb rgb(BufferedImage img) {
        int w = img.getWidth();
        int h = img.getHeight();
        byte[] out = new byte[w * h * 3];
        Raster r = img.getRaster();
        boolean gray = img.getColorModel().getColorSpace().getType() == java.awt.color.ColorSpace.TYPE_GRAY && r.getNumBands() <= 2
                && img.getColorModel().getComponentSize(0) == 8;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int at = (y * w + x) * 3;
                if (gray) {
                    byte v = (byte) r.getSample(x, y, 0);
                    out[at] = v;
                    out[at + 1] = v;
                    out[at + 2] = v;
                } else {
                    int argb = img.getRGB(x, y);
                    out[at] = (byte) (argb >> 16);
                    out[at + 1] = (byte) (argb >> 8);
                    out[at + 2] = (byte) argb;
                }
            }
        }
        return new Rgb(w, h, out);
    }

    /** PIL's {@code resize((S, S), BILINEAR)} of an RGB image: a pass along x, then one along y. */
    public Rgb resize(Rgb in) {
        Coefficients horizontal = Coefficients.of(in.width(), size);
        Coefficients vertical = Coefficients.of(in.height(), size);
        // rows the vertical pass reads, as PIL limits its horizontal pass to them
        int first = vertical.min[0];
        int last = vertical.min[size - 1] + vertical.count[size - 1];
        boolean needH = size != in.width();
        Rgb mid = needH ? pass(in, horizontal, Axis.X, first, last) : in;
        return size != in.height() ? pass(mid, vertical, Axis.Y, needH ? first : 0, mid.height()) : mid;
    }

    /** The direction of one of PIL's two separable passes. */
    private enum Axis { X, Y }

    /**
     * One pass in 8-bit fixed point, rounded to 8 bits as PIL's: along x, {@code co}'s output columns over input rows
     * [from, to); along y, {@code co}'s output rows over input rows that start at image row {@code from}.
     */
    private static Rgb pass(Rgb in, Coefficients co, Axis axis, int from, int to) {
        int w = axis == Axis.X ? co.min.length : in.width();
        int h = axis == Axis.X ? to - from : co.min.length;
        byte[] s = new byte[w * h * 3];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int o = axis == Axis.X ? x : y; // the output coordinate the coefficients index
                for (int c = 0; c < 3; c++) {
                    long acc = 1L << (PRECISION_BITS - 1);
                    for (int k = 0; k < co.count[o]; k++) {
                        int px = axis == Axis.X ? co.min[o] + k : x;
                        int py = axis == Axis.X ? y + from : co.min[o] - from + k;
                        acc += (long) in.at(px, py, c) * co.weights[o][k];
                    }
                    s[(y * w + x) * 3 + c] = clip8(acc);
                }
            }
        }
        return new Rgb(w, h, s);
    }

    private static byte clip8(long acc) {
        long v = acc >> PRECISION_BITS;
        return (byte) (v < 0 ? 0 : v > 255 ? 255 : v);
    }

    /** Channel-first float32: {@code (v / 255 - 0.5) / 0.5}, as HF's rescale then normalize. */
    private float[] normalized(Rgb img) {
        float[] out = new float[3 * size * size];
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < size; y++) {
                for (int x = 0; x < size; x++) {
                    float rescaled = (float) (img.at(x, y, c) * (1 / 255.0));
                    out[(c * size + y) * size + x] = (rescaled - 0.5f) / 0.5f;
                }
            }
        }
        return out;
    }

    /** One axis of PIL's bilinear resample: per output index, the first input index, the count, and fixed-point weights. */
    private record Coefficients(int[] min, int[] count, int[][] weights) {
        static Coefficients of(int in, int out) {
            double scale = (double) in / out;
            double filterScale = Math.max(scale, 1.0);
            double support = 1.0 * filterScale; // the bilinear (triangle) filter's support is 1
            int[] min = new int[out];
            int[] count = new int[out];
            int[][] weights = new int[out][];
            for (int i = 0; i < out; i++) {
                double center = (i + 0.5) * scale;
                int lo = Math.max(0, (int) (center - support + 0.5));
                int hi = Math.min(in, (int) (center + support + 0.5));
                double[] w = new double[Math.max(0, hi - lo)];
                double total = 0;
                for (int k = 0; k < w.length; k++) {
                    double t = Math.abs((k + lo - center + 0.5) / filterScale);
                    w[k] = t < 1 ? 1 - t : 0;
                    total += w[k];
                }
                int[] fixed = new int[w.length];
                for (int k = 0; k < w.length; k++) {
                    double v = total != 0 ? w[k] / total : w[k];
                    fixed[k] = (int) (v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
                }
                min[i] = lo;
                count[i] = w.length;
                weights[i] = fixed;
            }
            return new Coefficients(min, count, weights);
        }
    }
}
