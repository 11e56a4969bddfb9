package dev.jtune.gemma.vision;

import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15's preprocessing bound: the fixture's three image files (PNG downscaled, PNG upscaled, JPEG non-square)
 * through the JDK's decoders and PIL's bilinear resize give pixel_values within max(the PIL-torchvision difference,
 * 8/255) of HF's slow (PIL) processor's; the error against the fast (torchvision) one is printed beside it.
 */
class ImagePreprocessorGoldenTest {
    @Test
    void theFixtureImagesMatchHfsProcessor() {
        Path dir = Gemma3MultimodalGoldenTest.fixture("");
        try (Scope s = Scope.open("pixels"); SafeTensorsFile golden = SafeTensorsFile.open(dir.resolve("golden.safetensors"))) {
            Tensor got = new ImagePreprocessor(56).pixelValues(List.of(dir.resolve("img0.png"), dir.resolve("img1.png"), dir.resolve("img2.jpg")), Device.CPU);
            double[] a = got.toDoubleArray();
            double[] slow = golden.load("pixel_values", Device.CPU).toDoubleArray();
            double[] fast = golden.contains("pixel_values_fast") ? golden.load("pixel_values_fast", Device.CPU).toDoubleArray() : slow;
            double vsSlow = 0;
            double vsFast = 0;
            double slowFast = 0;
            for (int i = 0; i < a.length; i++) {
                vsSlow = Math.max(vsSlow, Math.abs(a[i] - slow[i]));
                vsFast = Math.max(vsFast, Math.abs(a[i] - fast[i]));
                slowFast = Math.max(slowFast, Math.abs(slow[i] - fast[i]));
            }
            double bound = Math.max(slowFast, 8 / 255.0); // in pixel_values' units, as the issue states it (4 steps of 8 bits)
            System.out.printf("pixel_values max abs error: %.5f against PIL's processor, %.5f against torchvision's (they differ by %.5f); bound %.5f%n",
                    vsSlow, vsFast, slowFast, bound);
            assertTrue(vsSlow <= bound, "max abs error " + vsSlow + " against HF's PIL processor, bound " + bound);
        }
    }

    /**
     * The fixture's preprocessor_config.json (HF's, as save_pretrained wrote it) passes; pan-and-scan, another size or
     * another normalization is refused naming the file and the field.
     */
    @Test
    void settingsThisPreprocessorDoesNotFollowAreRefused(@org.junit.jupiter.api.io.TempDir Path tmp) throws java.io.IOException {
        Path dir = Gemma3MultimodalGoldenTest.fixture("");
        var vision = dev.jtune.gemma.config.Gemma3VisionConfig.read(dir).orElseThrow();
        ImagePreprocessor.checkSettings(dir, vision);
        ImagePreprocessor.checkSettings(tmp, vision); // no file: HF's defaults
        String hf = java.nio.file.Files.readString(dir.resolve(ImagePreprocessor.CONFIG_FILE));
        java.util.Map<String, String> cases = java.util.Map.of(
                hf.replace("\"do_convert_rgb\": true", "\"do_pan_and_scan\": true, \"do_convert_rgb\": true"), "do_pan_and_scan",
                hf.replace("\"height\": 56", "\"height\": 64"), "size.height",
                hf.replaceFirst("0\\.5", "0.48145466"), "image_mean",
                hf.replace("\"resample\": 2", "\"resample\": 3"), "resample");
        for (var c : cases.entrySet()) {
            assertTrue(!c.getKey().equals(hf), "the case changed the file: " + c.getValue());
            java.nio.file.Files.writeString(tmp.resolve(ImagePreprocessor.CONFIG_FILE), c.getKey());
            var e = org.junit.jupiter.api.Assertions.assertThrows(dev.jtune.gemma.config.ConfigException.class,
                    () -> ImagePreprocessor.checkSettings(tmp, vision));
            assertTrue(e.getMessage().contains(c.getValue()) && e.getMessage().contains(ImagePreprocessor.CONFIG_FILE), e.getMessage());
        }
    }
}
