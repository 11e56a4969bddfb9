package dev.jtune.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Prepares an end-to-end training benchmark: a real Gemma 3 configuration with random bf16 weights written as an
 * HF checkpoint, and a generated dataset of conversations (a short question, a long answer of random words, about
 * 1.25 tokens a word). Usage: {@code PrepareRun <dir> [config=gemma-3-270m] [conversations=60] [words=6500] [cuda]
 * [images]}; words {@code MIN-MAX} draws each answer's length log-uniformly from [MIN, MAX] (real data's spread, for
 * packing). {@code images} (an image-text config, gemma-3-4b-it): the whole Gemma3ForConditionalGeneration with random
 * weights, and each conversation asks about its own drawn image ({@code <image>} in the question, {@code dir/images},
 * needs {@code java.desktop}).
 */
public final class PrepareRun {
    private static final String[] WORDS = ("the model learns from examples and each step updates a small set of adapter weights "
            + "while the frozen base stays in four bits memory is planned before the first kernel runs tokens flow through "
            + "attention layers that look back over a sliding window of five hundred twelve positions and every sixth "
            + "layer sees the whole sequence gradients accumulate over micro batches before the optimizer moves").split(" ");

    private PrepareRun() {
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        String name = args.length > 1 ? args[1] : "gemma-3-270m";
        int conversations = args.length > 2 ? Integer.parseInt(args[2]) : 60;
        String words = args.length > 3 ? args[3] : "6500";
        int minWords = Integer.parseInt(words.contains("-") ? words.substring(0, words.indexOf('-')) : words);
        int maxWords = Integer.parseInt(words.contains("-") ? words.substring(words.indexOf('-') + 1) : words);
        // the weights are drawn on the GPU when asked (counter-based: the same values as on the cpu, much sooner for 4B)
        Device device = args.length > 4 && args[4].equals("cuda") ? Device.cuda(0) : Device.CPU;
        boolean images = args.length > 5 && args[5].equals("images");
        try (Scope s = Scope.open("prepare")) {
            if (images) {
                Path modelDir = Files.createDirectories(dir.resolve("model"));
                try (var in = Gemma3Config.class.getResourceAsStream("/dev/jtune/gemma/configs/" + name + ".json")) {
                    if (in == null) {
                        throw new IllegalArgumentException("no built-in configuration " + name);
                    }
                    Files.write(modelDir.resolve("config.json"), in.readAllBytes());
                }
                Gemma3MultimodalModel.random(modelDir, device, DType.BF16, 7).export(modelDir, LoraMerge.DEFAULT_SHARD_BYTES);
            } else {
                Gemma3Model model = Gemma3Model.random(Gemma3Config.builtIn(name), device, DType.BF16, 7);
                LoraMerge.export(model, dir.resolve("model"), LoraMerge.DEFAULT_SHARD_BYTES);
            }
        }
        if (images) {
            Files.createDirectories(dir.resolve("images"));
        }
        Random rnd = new Random(1);
        ObjectMapper json = new ObjectMapper();
        List<String> lines = new ArrayList<>();
        for (int c = 0; c < conversations; c++) {
            StringBuilder answer = new StringBuilder();
            int length = minWords == maxWords ? minWords
                    : (int) Math.round(Math.exp(Math.log(minWords) + rnd.nextDouble() * (Math.log(maxWords) - Math.log(minWords))));
            for (int w = 0; w < length; w++) {
                answer.append(WORDS[rnd.nextInt(WORDS.length)]).append(w % 17 == 16 ? ". " : " ");
            }
            if (images) {
                String file = "img" + c + ".png";
                Pictures.draw(rnd, dir.resolve("images").resolve(file));
                lines.add(json.writeValueAsString(Map.of("id", "gen" + c, "image", file, "conversations", List.of(
                        Map.of("from", "human", "value", "<image>\nWrite about the picture number " + c + "."),
                        Map.of("from", "gpt", "value", answer.toString().trim())))));
            } else {
                lines.add(json.writeValueAsString(Map.of("id", "gen" + c, "conversations", List.of(
                        Map.of("from", "human", "value", "Write about training number " + c + "."),
                        Map.of("from", "gpt", "value", answer.toString().trim())))));
            }
        }
        Files.write(dir.resolve("data.jsonl"), lines);
        System.out.println("wrote " + dir.resolve("model") + " and " + dir.resolve("data.jsonl") + " (" + conversations + " conversations"
                + (images ? ", each with an image in " + dir.resolve("images") : "") + ")");
    }

    /**
     * The drawn images, in a class of their own: the verifier loads java.desktop's image classes with the class that
     * uses them, and a runtime without that module (the device's plain bundle) must still prepare text runs.
     */
    private static final class Pictures {
        /** A 320 x 240 PNG: noise and a coloured ellipse (the preprocessor resizes it to the tower's size). */
        static void draw(Random rnd, Path file) throws java.io.IOException {
            java.awt.image.BufferedImage img = new java.awt.image.BufferedImage(320, 240, java.awt.image.BufferedImage.TYPE_INT_RGB);
            for (int y = 0; y < 240; y++) {
                for (int x = 0; x < 320; x++) {
                    img.setRGB(x, y, rnd.nextInt(1 << 24));
                }
            }
            java.awt.Graphics2D g = img.createGraphics();
            g.setColor(new java.awt.Color(rnd.nextInt(1 << 24)));
            g.fillOval(rnd.nextInt(100), rnd.nextInt(80), 120 + rnd.nextInt(80), 80 + rnd.nextInt(60));
            g.dispose();
            javax.imageio.ImageIO.write(img, "png", file.toFile());
        }
    }
}
