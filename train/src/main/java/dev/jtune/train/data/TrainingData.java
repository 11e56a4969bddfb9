package dev.jtune.train.data;

import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.train.args.TrainArgs;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The trainer's data: training and evaluation examples, and the stats to print.
 * <ul>
 * <li>{@code --eval_data_path}: the eval set is that file, loaded with the same options;</li>
 * <li>{@code --eval_ratio r > 0}: the eval set is held out of the training file's examples by {@link EvalSplit}
 * (after tokenization, bad records and length drops; seeded by {@code --seed});</li>
 * <li>neither: no eval set.</li>
 * </ul>
 * Both lists keep file order (the trainer shuffles per epoch).
 *
 * @param train      training examples
 * @param eval       evaluation examples (empty if none)
 * @param trainStats the training file's stats (with --eval_ratio, the whole file's, before the split)
 * @param evalStats  the eval file's stats, with --eval_data_path
 * @param evalRatio  the ratio held out of the training file (0 if none)
 */
public record TrainingData(List<Example> train, List<Example> eval, DataStats trainStats,
                           Optional<DataStats> evalStats, double evalRatio) {

    public TrainingData {
        train = List.copyOf(train);
        eval = List.copyOf(eval);
        Objects.requireNonNull(trainStats, "trainStats");
        Objects.requireNonNull(evalStats, "evalStats");
    }

    /**
     * Loads {@code --data_path} (which must be set) and the eval data the flags ask for, with
     * {@code --max_seq_length}, {@code --skip_bad_records}, {@code --lazy_preprocess},
     * {@code --dataloader_num_workers} and {@code --seed}.
     */
    public static TrainingData load(TrainArgs args, ChatTemplate template) {
        return load(args, template, null);
    }

    /** {@link #load(TrainArgs, ChatTemplate)} accepting image records as {@code images} says (null: a text model's data). */
    public static TrainingData load(TrainArgs args, ChatTemplate template, DataOptions.ImageInput images) {
        if (args.dataPath() == null) {
            throw new IllegalArgumentException("--data_path is not set (loadBundled loads the bundled dataset)");
        }
        DataOptions options = images == null ? DataOptions.from(args) : DataOptions.from(args).withImages(images);
        return load(new DatasetBuilder(template, options), args.dataPath(), args.evalDataPath(), args.evalRatio(), args.seed());
    }

    /** The bundled default dataset ({@link DatasetBuilder#BUNDLED_RESOURCE}) in place of --data_path; else as {@link #load(TrainArgs, ChatTemplate)}. */
    public static TrainingData loadBundled(TrainArgs args, ChatTemplate template) {
        DatasetBuilder builder = new DatasetBuilder(template, DataOptions.from(args));
        return load(builder, builder.loadBundled(), args.evalDataPath(), args.evalRatio(), args.seed());
    }

    /**
     * Loads the training file and the eval data.
     *
     * @param evalDataPath a separate eval file, or null
     * @param evalRatio    the fraction of the training examples to hold out (0: none); not with evalDataPath
     * @throws DataException on a bad record (unless skipping), an unreadable file, or a file with no usable example
     */
    public static TrainingData load(DatasetBuilder builder, Path dataPath, Path evalDataPath, double evalRatio, long seed) {
        return load(builder, builder.load(dataPath), evalDataPath, evalRatio, seed);
    }

    private static TrainingData load(DatasetBuilder builder, DatasetBuilder.Dataset trainSet, Path evalDataPath,
                                     double evalRatio, long seed) {
        if (evalDataPath != null && evalRatio > 0) {
            throw new IllegalArgumentException("eval data path and eval ratio " + evalRatio + " are both set: choose one");
        }
        requireExamples(trainSet, "training");
        if (evalDataPath != null) {
            DatasetBuilder.Dataset evalSet = builder.load(evalDataPath);
            requireExamples(evalSet, "evaluation");
            return new TrainingData(trainSet.examples(), evalSet.examples(), trainSet.stats(),
                    Optional.of(evalSet.stats()), 0);
        }
        if (evalRatio > 0) {
            EvalSplit<Example> split;
            try {
                split = EvalSplit.of(trainSet.examples(), evalRatio, seed);
            } catch (IllegalArgumentException e) {
                throw DataException.file(trainSet.stats().source(), "--eval_ratio: " + e.getMessage(), e);
            }
            return new TrainingData(split.train(), split.eval(), trainSet.stats(), Optional.empty(), evalRatio);
        }
        return new TrainingData(trainSet.examples(), List.of(), trainSet.stats(), Optional.empty(), 0);
    }

    private static void requireExamples(DatasetBuilder.Dataset set, String what) {
        if (set.examples().isEmpty()) {
            DataStats s = set.stats();
            throw DataException.file(s.source(), "no usable " + what + " example: " + s.summary(), null);
        }
    }

    /** The stats of each file and the split, for the console. */
    public String summary() {
        StringBuilder sb = new StringBuilder(trainStats.summary());
        evalStats.ifPresent(s -> sb.append('\n').append(s.summary()));
        if (evalRatio > 0) {
            sb.append(String.format("%n  --eval_ratio %s: %,d training + %,d eval examples", evalRatio, train.size(),
                    eval.size()));
        }
        return sb.toString();
    }
}
