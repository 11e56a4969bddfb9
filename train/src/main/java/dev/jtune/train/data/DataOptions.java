package dev.jtune.train.data;

import dev.jtune.train.args.TrainArgs;

/**
 * How a dataset file becomes examples.
 *
 * @param maxSeqLength   longest example in tokens; longer ones lose their tail (counted in {@link DataStats})
 * @param skipBadRecords skip and count malformed records instead of throwing {@link DataException} at the first
 * @param lazyPreprocess tokenize on background threads while the file is read (same result as on the caller's)
 * @param numWorkers     tokenizing threads for {@code lazyPreprocess}; values below 1 mean 1
 * @param images         image input for an image-text model, or null: image records are refused
 */
public record DataOptions(int maxSeqLength, boolean skipBadRecords, boolean lazyPreprocess, int numWorkers, ImageInput images) {
    public DataOptions {
        if (maxSeqLength < 2) {
            throw new IllegalArgumentException("maxSeqLength must be at least 2, got " + maxSeqLength);
        }
        numWorkers = Math.max(1, numWorkers);
    }

    /** Text only. */
    public DataOptions(int maxSeqLength, boolean skipBadRecords, boolean lazyPreprocess, int numWorkers) {
        this(maxSeqLength, skipBadRecords, lazyPreprocess, numWorkers, null);
    }

    /**
     * How image records become examples: files named relative to {@code folder} ({@code --image_folder}; absolute names
     * stand), each image {@code tokensPerImage} soft tokens after {@code <start_of_image>} (id {@code boiToken}), as the
     * model's config says.
     */
    public record ImageInput(java.nio.file.Path folder, int tokensPerImage, int boiToken) {
        public ImageInput {
            java.util.Objects.requireNonNull(folder, "folder");
            if (tokensPerImage <= 0) {
                throw new IllegalArgumentException("tokens per image must be positive, got " + tokensPerImage);
            }
        }
    }

    public DataOptions withImages(ImageInput input) {
        return new DataOptions(maxSeqLength, skipBadRecords, lazyPreprocess, numWorkers, input);
    }

    /** {@code --max_seq_length}, {@code --skip_bad_records}, {@code --lazy_preprocess}, {@code --dataloader_num_workers}. */
    public static DataOptions from(TrainArgs args) {
        return new DataOptions(args.maxSeqLength(), args.skipBadRecords(), args.lazyPreprocess(), args.dataloaderNumWorkers());
    }

    /** Eager, strict, the given length. */
    public static DataOptions of(int maxSeqLength) {
        return new DataOptions(maxSeqLength, false, false, 1);
    }

    public DataOptions withSkipBadRecords(boolean skip) {
        return new DataOptions(maxSeqLength, skip, lazyPreprocess, numWorkers, images);
    }

    public DataOptions withLazyPreprocess(boolean lazy, int workers) {
        return new DataOptions(maxSeqLength, skipBadRecords, lazy, workers, images);
    }

    public DataOptions withMaxSeqLength(int length) {
        return new DataOptions(length, skipBadRecords, lazyPreprocess, numWorkers, images);
    }
}
