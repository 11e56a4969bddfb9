package dev.jtune.train.data;

import dev.jtune.gemma.tokenizer.ChatTemplate.Message;

import java.util.List;
import java.util.Objects;

/**
 * One record of a dataset file, read and validated: its messages in the chat template's vocabulary (roles
 * {@code system}, {@code user}, {@code assistant}), contents as written (the template trims them).
 *
 * @param source the file, as the user named it
 * @param index  0-based index of the record in the file (bad records count too)
 * @param line   1-based line the record starts on
 * @param llava  whether the record was in LLaVA's {@code conversations} form (else {@code messages})
 * @param images the record's image files as written (relative to {@code --image_folder} unless absolute), in the order
 *               of their places in the messages ({@code <start_of_image>} markers); empty for a text record
 */
public record Conversation(String source, int index, int line, boolean llava, List<Message> messages, List<String> images) {
    public Conversation {
        Objects.requireNonNull(source, "source");
        messages = List.copyOf(messages);
        images = List.copyOf(images);
    }

    /** A text-only record. */
    public Conversation(String source, int index, int line, boolean llava, List<Message> messages) {
        this(source, index, line, llava, messages, List.of());
    }

    /** A bad record's exception, naming this record's file, index and line. */
    DataException error(DataException.Reason reason, String detail, Throwable cause) {
        return new DataException(source, index, line, reason, detail, cause);
    }
}
