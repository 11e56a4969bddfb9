package dev.jtune.train.data;

import dev.jtune.JtuneException;

import java.util.Objects;

/**
 * A problem with a dataset file: a malformed record, or a file that cannot be read at all. The message names the
 * file, the record's index (0-based, counting every record in the file, good or bad), the line the record starts on
 * when known, and the reason, e.g.
 * <pre>data/train.jsonl: record 12 (line 14): unknown role: turn 1 has "from": "bot"; expected human, gpt or system</pre>
 * With {@code --skip_bad_records} a bad record is counted in {@link DataStats} by its {@link Reason} instead of
 * being thrown; file-level problems ({@link #recordIndex()} {@code -1}) and syntax errors inside a JSON array
 * (after which nothing can be read) always stop loading.
 */
public final class DataException extends JtuneException {

    /** Why a record (or file) was refused; {@link #label()} is how messages and summaries name it. */
    public enum Reason {
        /** The file cannot be read, is empty, is neither a JSON array nor JSON lines, or yields no usable example. */
        FILE("unusable file"),
        INVALID_JSON("invalid JSON"),
        NOT_AN_OBJECT("not a JSON object"),
        MISSING_CONVERSATIONS("missing conversations"),
        MISSING_FIELD("missing field"),
        NON_STRING_VALUE("non-string value"),
        UNKNOWN_ROLE("unknown role"),
        EMPTY_CONTENT("empty content"),
        /** LLaVA's {@code <image>} placeholder, an {@code image} field or an image content part: text-only training. */
        IMAGE("image record"),
        /** Image placeholders ({@code <image>}, image parts) that differ in number from the record's images. */
        IMAGE_COUNT("image count mismatch"),
        /** A record's image file is missing (resolved under {@code --image_folder}). */
        IMAGE_FILE("missing image file"),
        /** A video ({@code "video"} field or part): video input is not built. */
        VIDEO("video record"),
        UNSUPPORTED_CONTENT("unsupported content part"),
        /** The Gemma 3 chat template refused the conversation (its {@code ChatFormatException}). */
        ROLES_NOT_ALTERNATING("roles not alternating"),
        NO_ASSISTANT_TURN("no assistant turn to train on");

        private final String label;

        Reason(String label) {
            this.label = label;
        }

        public String label() {
            return label;
        }
    }

    private final String source;
    private final int recordIndex;
    private final int line;
    private final Reason reason;
    private final String detail;

    /**
     * @param source      the file, as the user named it
     * @param recordIndex 0-based index of the record in the file; -1 for a problem with the file as a whole
     * @param line        1-based line where the record starts (or the error is); 0 if unknown
     */
    public DataException(String source, int recordIndex, int line, Reason reason, String detail, Throwable cause) {
        super(format(source, recordIndex, line, reason, detail), cause);
        this.source = Objects.requireNonNull(source, "source");
        this.recordIndex = recordIndex;
        this.line = line;
        this.reason = Objects.requireNonNull(reason, "reason");
        this.detail = Objects.requireNonNull(detail, "detail");
    }

    public DataException(String source, int recordIndex, int line, Reason reason, String detail) {
        this(source, recordIndex, line, reason, detail, null);
    }

    /** A problem with the file as a whole. */
    static DataException file(String source, String detail, Throwable cause) {
        return new DataException(source, -1, 0, Reason.FILE, detail, cause);
    }

    private static String format(String source, int recordIndex, int line, Reason reason, String detail) {
        StringBuilder sb = new StringBuilder(source);
        if (recordIndex >= 0) {
            sb.append(": record ").append(recordIndex);
            if (line > 0) {
                sb.append(" (line ").append(line).append(')');
            }
        } else if (line > 0) {
            sb.append(": line ").append(line);
        }
        return sb.append(": ").append(reason.label()).append(": ").append(detail).toString();
    }

    /** The same problem with a hint on what to do appended to its detail, in parentheses. */
    public DataException withHint(String hint) {
        return new DataException(source, recordIndex, line, reason, detail + " (" + hint + ")", getCause());
    }

    /** The file, as the user named it. */
    public String source() {
        return source;
    }

    /** 0-based index of the record in its file; -1 for a problem with the whole file. */
    public int recordIndex() {
        return recordIndex;
    }

    /** 1-based line of the record (JSON lines: its line; JSON array: where it starts); 0 if unknown. */
    public int line() {
        return line;
    }

    public Reason reason() {
        return reason;
    }

    /** The message without the file / record / reason prefix. */
    public String detail() {
        return detail;
    }
}
