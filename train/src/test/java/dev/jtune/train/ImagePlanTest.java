package dev.jtune.train;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.train.args.CommandLine;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.report.MemoryReport;
import org.junit.jupiter.api.Test;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The memory planner on an image-text checkpoint (the gemma3-mm-tiny fixture's configuration, planned for the GPU on
 * the meta device): the tower and projector are in the plan's weights, a trained tower's activations are in its
 * activations, and checkpointing shrinks them as it does the language model's.
 */
class ImagePlanTest {
    private static Path fixture() {
        try {
            return Path.of(ImagePlanTest.class.getResource("/gemma3-mm-tiny/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static final Gemma3Config TEXT = Gemma3Config.read(fixture());
    private static final Gemma3VisionConfig VISION = Gemma3VisionConfig.read(fixture()).orElseThrow();

    /** A full fine-tune of the language model, 2 x 64 tokens in bf16, then {@code extra}. */
    private static TrainArgs args(String... extra) {
        List<String> a = new ArrayList<>(List.of("--bf16", "True", "--max_seq_length", "64", "--per_device_train_batch_size", "2"));
        a.addAll(List.of(extra));
        return ((CommandLine.Train) CommandLine.parse(a.toArray(String[]::new), Map.of(), CommandLine.Purpose.PLAN)).args();
    }

    private static MemoryReport plan(TrainArgs a, int images) {
        MemoryPlanner.Model m = images < 0 ? MemoryPlanner.Model.text(TEXT) : new MemoryPlanner.Model(TEXT, Optional.of(VISION), images);
        return MemoryPlanner.predict(m, a, Device.Kind.CUDA).report();
    }

    private static long weights(MemoryReport r) {
        return r.bytes(MemoryReport.deviceKey(MemoryCategory.WEIGHTS));
    }

    private static long activations(MemoryReport r) {
        return r.bytes(MemoryReport.deviceKey(MemoryCategory.ACTIVATIONS));
    }

    @Test
    void theTowerAndProjectorWeighInThePlan() {
        TrainArgs frozen = args("--freeze_vision_tower", "True", "--freeze_projector", "True");
        long text = weights(plan(frozen, -1));
        long whole = weights(plan(frozen, 1));
        // the tiny tower and projector: 2 layers of width 24 over 16 patches, and a 24 x 64 projection, in bf16
        long towerBytes;
        try (dev.jtune.engine.Scope s = dev.jtune.engine.Scope.open("count")) {
            towerBytes = 2L * dev.jtune.gemma.vision.Gemma3MultimodalModel.random(TEXT, VISION, Device.META, dev.jtune.engine.DType.BF16, 0)
                    .namedParameters().entrySet().stream().filter(e -> !e.getKey().startsWith(dev.jtune.gemma.vision.Gemma3MultimodalModel.LANGUAGE_MODEL))
                    .mapToLong(e -> e.getValue().shape().numel()).sum();
        }
        System.out.printf("plan weights: text model %,d bytes, image-text %,d (the tower and projector: %,d in bf16)%n", text, whole, towerBytes);
        assertTrue(whole - text >= towerBytes, "the image-text plan holds the tower's and projector's " + towerBytes + " bytes: " + text + " -> " + whole);
    }

    @Test
    void aTrainedTowersActivationsAreCountedAndCheckpointingShrinksThem() {
        long frozen = activations(plan(args("--freeze_vision_tower", "True"), 1));
        long trained = activations(plan(args("--freeze_vision_tower", "False"), 1));
        long frozenCkpt = activations(plan(args("--freeze_vision_tower", "True", "--gradient_checkpointing", "True"), 1));
        long trainedCkpt = activations(plan(args("--freeze_vision_tower", "False", "--gradient_checkpointing", "True"), 1));
        System.out.printf("plan activations: tower frozen %,d, trained %,d; under checkpointing %,d and %,d%n", frozen, trained, frozenCkpt, trainedCkpt);
        assertTrue(trained > frozen, "a trained tower keeps what its backward needs: " + frozen + " -> " + trained);
        assertTrue(trainedCkpt - frozenCkpt < trained - frozen, "checkpointing keeps less of the tower: " + (trained - frozen)
                + " -> " + (trainedCkpt - frozenCkpt));
        long twoImages = activations(plan(args("--freeze_vision_tower", "False"), 2));
        assertTrue(twoImages > trained, "two images a sequence keep more than one: " + trained + " -> " + twoImages);
        // more images than the sequence holds: as many as fit whole (a record is cut to --max_seq_length)
        long many = activations(plan(args("--freeze_vision_tower", "False"), 1000));
        assertTrue(many >= twoImages, "a sequence full of images: " + many);
    }
}
