package dev.jtune.train.data;

import dev.jtune.train.args.TrainArgs;

/**
 * How a dataset file becomes examples.
 *
 * @param maxSeqLength   longest example in tokens; longer ones lose their tail (counted in {@link DataStats})
 * @param skipBadRecords skip and count malformed records instead of throwing {@link DataException} at the first
 * @param lazyPreprocess tokenize on background threads while the file is read (same result as on the caller's)
 * @param numWorkers     tokenizing threads for {@code lazyPreprocess}; values below 1 mean 1
 */
public record DataOptions(int maxSeqLength, boolean skipBadRecords, boolean lazyPreprocess, int numWorkers) {
    public DataOptions {
        if (maxSeqLength < 2) {
            throw new IllegalArgumentException("maxSeqLength must be at least 2, got " + maxSeqLength);
        }
        numWorkers = Math.max(1, numWorkers);
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
        return new DataOptions(maxSeqLength, skip, lazyPreprocess, numWorkers);
    }

    public DataOptions withLazyPreprocess(boolean lazy, int workers) {
        return new DataOptions(maxSeqLength, skipBadRecords, lazy, workers);
    }

    public DataOptions withMaxSeqLength(int length) {
        return new DataOptions(length, skipBadRecords, lazyPreprocess, numWorkers);
    }
}
