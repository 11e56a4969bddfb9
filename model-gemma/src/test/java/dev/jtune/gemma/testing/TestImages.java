package dev.jtune.gemma.testing;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/** Drawn test images for the vision tests (the model's and the trainer's), so both learn from the same pictures. */
public final class TestImages {
    private TestImages() {
    }

    /**
     * Writes a 70 x 50 PNG to {@code file}: gray noise with a filled red (class 0) or blue (class 1) ellipse of 40-50 x
     * 30-38 pixels at a random place. (With smaller shapes, random classes and 50 steps, one seed in some tens left the
     * tiny model at the image-blind ln 2.)
     */
    public static Path ellipse(Path file, int cls, Random rnd) {
        BufferedImage img = new BufferedImage(70, 50, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 50; y++) {
            for (int x = 0; x < 70; x++) {
                int g = 80 + rnd.nextInt(60);
                img.setRGB(x, y, (g << 16) | (g << 8) | g);
            }
        }
        Graphics2D g = img.createGraphics();
        g.setColor(cls == 0 ? new Color(220, 30, 30) : new Color(30, 30, 220));
        g.fillOval(rnd.nextInt(20), rnd.nextInt(12), 40 + rnd.nextInt(10), 30 + rnd.nextInt(8));
        g.dispose();
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            ImageIO.write(img, "png", file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("writing the test image " + file, e);
        }
        return file;
    }
}
