package dev.jtune.train.data;

import dev.jtune.train.data.DataException.Reason;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * What loading one dataset file did, for the trainer to print ({@link #summary()}): nothing is left out of the
 * examples without being counted here.
 *
 * @param source                  the file
 * @param maxSeqLength            the length limit applied
 * @param recordsRead             records in the file, good and bad
 * @param examplesKept            examples produced (= recordsRead - skippedTotal() - droppedTooLong)
 * @param skipped                 bad records skipped under --skip_bad_records, by reason (only reasons that occurred,
 *                                in {@link Reason} order)
 * @param skippedSamples          the messages of the first skipped records, in file order (at most {@value #SAMPLES}
 *                                per reason)
 * @param truncatedExamples       kept examples whose tail was cut to maxSeqLength
 * @param tokensCut               tokens in those cut tails
 * @param trainedTokensCut        of those, tokens that would have been trained on (label != -100)
 * @param droppedTooLong          examples dropped because every trained token lay beyond maxSeqLength
 * @param droppedTokens           tokens of the dropped examples (their whole length)
 * @param droppedTrainedTokens    of those, tokens that would have been trained on
 * @param droppedSamples          where the first dropped examples are (at most {@value #SAMPLES})
 * @param totalTokens             tokens in the kept examples (after truncation)
 * @param trainedTokens           of those, tokens trained on (label != -100)
 * @param longest                 the longest kept example, in tokens (after truncation: at most maxSeqLength)
 * @param longestBeforeTruncation the longest tokenized conversation, kept or dropped, before truncation
 */
public record DataStats(
        String source,
        int maxSeqLength,
        int recordsRead,
        int examplesKept,
        Map<Reason, Integer> skipped,
        List<String> skippedSamples,
        int truncatedExamples,
        long tokensCut,
        long trainedTokensCut,
        int droppedTooLong,
        long droppedTokens,
        long droppedTrainedTokens,
        List<String> droppedSamples,
        long totalTokens,
        long trainedTokens,
        int longest,
        int longestBeforeTruncation) {

    /** Samples kept per reason (and of dropped examples). */
    public static final int SAMPLES = 3;

    public DataStats {
        EnumMap<Reason, Integer> m = new EnumMap<>(Reason.class);
        m.putAll(skipped);
        skipped = Collections.unmodifiableMap(m);
        skippedSamples = List.copyOf(skippedSamples);
        droppedSamples = List.copyOf(droppedSamples);
    }

    /** Bad records skipped, all reasons. */
    public int skippedTotal() {
        int n = 0;
        for (int v : skipped.values()) {
            n += v;
        }
        return n;
    }

    /** Skipped for one reason. */
    public int skipped(Reason reason) {
        return skipped.getOrDefault(reason, 0);
    }

    /** Trained tokens the length limit cost: cut tails plus dropped examples. */
    public long trainedTokensLost() {
        return trainedTokensCut + droppedTrainedTokens;
    }

    /** Whether anything was skipped, truncated or dropped (worth a warning). */
    public boolean lossy() {
        return skippedTotal() > 0 || truncatedExamples > 0 || droppedTooLong > 0;
    }

    /** A few lines for the console, e.g. {@code data.jsonl: 200 records -> 200 examples (9,812 tokens, ...)}. */
    public String summary() {
        StringBuilder sb = new StringBuilder();
        sb.append(source).append(": ").append(n(recordsRead)).append(recordsRead == 1 ? " record -> " : " records -> ")
                .append(n(examplesKept)).append(examplesKept == 1 ? " example" : " examples")
                .append(" (").append(n(totalTokens)).append(" tokens, ").append(n(trainedTokens)).append(" trained;")
                .append(" longest ").append(n(longest)).append(", limit ").append(n(maxSeqLength)).append(')');
        int skippedTotal = skippedTotal();
        if (skippedTotal > 0) {
            sb.append("\n  skipped ").append(n(skippedTotal)).append(" bad record").append(skippedTotal == 1 ? "" : "s")
                    .append(" (--skip_bad_records):");
            String sep = " ";
            for (var e : skipped.entrySet()) {
                sb.append(sep).append(e.getKey().label()).append(": ").append(n(e.getValue()));
                sep = ", ";
            }
            for (String s : skippedSamples) {
                sb.append("\n    ").append(s);
            }
        }
        if (truncatedExamples > 0) {
            sb.append("\n  truncated ").append(n(truncatedExamples)).append(truncatedExamples == 1 ? " example" : " examples")
                    .append(" to --max_seq_length ").append(n(maxSeqLength)).append(": cut ")
                    .append(n(tokensCut)).append(" tokens, ").append(n(trainedTokensCut)).append(" of them trained")
                    .append(" (longest before truncation: ").append(n(longestBeforeTruncation)).append(')');
        }
        if (droppedTooLong > 0) {
            sb.append("\n  dropped ").append(n(droppedTooLong)).append(droppedTooLong == 1 ? " example" : " examples")
                    .append(" whose trained tokens all lie beyond --max_seq_length ").append(n(maxSeqLength))
                    .append(" (").append(n(droppedTokens)).append(" tokens, ").append(n(droppedTrainedTokens))
                    .append(" trained):");
            for (String s : droppedSamples) {
                sb.append("\n    ").append(s);
            }
        }
        return sb.toString();
    }

    private static String n(long v) {
        return String.format("%,d", v);
    }

    /** Accumulates stats record by record, in file order. */
    static final class Builder {
        private final String source;
        private final int maxSeqLength;
        private int recordsRead;
        private int examplesKept;
        private final EnumMap<Reason, Integer> skipped = new EnumMap<>(Reason.class);
        private final List<String> skippedSamples = new ArrayList<>();
        private int truncatedExamples;
        private long tokensCut;
        private long trainedTokensCut;
        private int droppedTooLong;
        private long droppedTokens;
        private long droppedTrainedTokens;
        private final List<String> droppedSamples = new ArrayList<>();
        private long totalTokens;
        private long trainedTokens;
        private int longest;
        private int longestBeforeTruncation;

        Builder(String source, int maxSeqLength) {
            this.source = source;
            this.maxSeqLength = maxSeqLength;
        }

        void kept(Example e, int rawLength, int cut, int trainedCut) {
            recordsRead++;
            examplesKept++;
            totalTokens += e.length();
            for (int l : e.labels()) {
                if (l != Example.IGNORE) {
                    trainedTokens++;
                }
            }
            longest = Math.max(longest, e.length());
            longestBeforeTruncation = Math.max(longestBeforeTruncation, rawLength);
            if (cut > 0) {
                truncatedExamples++;
                tokensCut += cut;
                trainedTokensCut += trainedCut;
            }
        }

        void dropped(Conversation c, int length, int trained, int firstTrained) {
            recordsRead++;
            droppedTooLong++;
            droppedTokens += length;
            droppedTrainedTokens += trained;
            longestBeforeTruncation = Math.max(longestBeforeTruncation, length);
            if (droppedSamples.size() < SAMPLES) {
                droppedSamples.add(c.source() + ": record " + c.index() + " (line " + c.line() + "): "
                        + String.format("%,d", length) + " tokens, the first trained one at position "
                        + String.format("%,d", firstTrained));
            }
        }

        void skipped(DataException e) {
            recordsRead++;
            if (skipped.merge(e.reason(), 1, Integer::sum) <= SAMPLES) {
                skippedSamples.add(e.getMessage());
            }
        }

        int examplesKept() {
            return examplesKept;
        }

        DataStats build() {
            return new DataStats(source, maxSeqLength, recordsRead, examplesKept, skipped, skippedSamples, truncatedExamples,
                    tokensCut, trainedTokensCut, droppedTooLong, droppedTokens, droppedTrainedTokens, droppedSamples,
                    totalTokens, trainedTokens, longest, longestBeforeTruncation);
        }
    }
}
