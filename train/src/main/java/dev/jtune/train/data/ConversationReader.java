package dev.jtune.train.data;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.io.JsonEOFException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.gemma.tokenizer.ChatTemplate.Message;
import dev.jtune.train.data.DataException.Reason;

import java.io.BufferedReader;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Reads a dataset file record by record, without holding the file in memory (Jackson's streaming parser; one
 * record's tree at a time).
 * <p>
 * <b>Layouts</b>, told apart by the first non-space character: {@code [} a JSON array of records; {@code {} JSON
 * lines, one record per line (blank lines are ignored). A syntax error in a JSON array ends the file (nothing after
 * it can be trusted) and always throws; in JSON lines it spoils only its line, a bad record like any other.
 * <p>
 * <b>Records</b>, either form:
 * <ul>
 * <li>LLaVA: {@code {"id": ..., "conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}]}};</li>
 * <li>messages: {@code {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", ...}]}}, a content
 * being a string or a list of {@code {"type": "text", "text": ...}} parts (each trimmed, then concatenated, as the
 * Gemma 3 template does).</li>
 * </ul>
 * Roles: {@code human}/{@code user}; {@code gpt}/{@code assistant}/{@code model}; {@code system} (in either form).
 * Images ({@link #images}): refused by default, not stripped (a text model): LLaVA's {@code <image>} placeholder in a
 * text, an {@code image}/{@code images} field, an image content part; read for an image-text model. Other fields
 * ({@code id}, ...) are ignored.
 * <p>
 * {@link #next()} returns each record as a {@link Result.Ok} or a {@link Result.Bad} (whose {@link DataException}
 * names file, record index, line and reason), and throws {@link DataException} for what ends the file. Not
 * thread-safe.
 */
public final class ConversationReader implements Closeable {
    /** What a video record is told (Gemma3-Finetune samples frames from videos; jtune does not decode video). */
    private static final String VIDEO_NOT_BUILT = "video input is not built; remove video records, or give frames as images";

    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** One record: read, or refused. */
    public sealed interface Result permits Result.Ok, Result.Bad {
        record Ok(Conversation conversation) implements Result {
        }

        record Bad(DataException error) implements Result {
        }
    }

    /** Whether records may hold images: refused for a text model, read for an image-text one. */
    public enum Images { REFUSED, ACCEPTED }

    private final String source;
    private final BufferedReader in;
    private Images images = Images.REFUSED;
    private final boolean jsonLines;
    private JsonParser array;     // the JSON array layout's parser
    private boolean started;      // array: '[' consumed
    private int nextIndex;        // index of the next record
    private int lineNo;           // JSON lines: lines read so far
    private int firstContentLine; // JSON lines: the first non-blank line
    private boolean done;

    private ConversationReader(InputStream stream, String source) {
        this.source = source;
        var decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        this.in = new BufferedReader(new InputStreamReader(stream, decoder), 1 << 16);
        boolean ok = false;
        try {
            int first = firstNonSpace();
            if (first == -1) {
                throw DataException.file(source, "the file is empty: no records", null);
            }
            if (first == '[') {
                jsonLines = false;
                array = MAPPER.getFactory().createParser(in);
            } else if (first == '{') {
                jsonLines = true;
            } else {
                throw DataException.file(source, "starts with '" + new String(Character.toChars(first))
                        + "': expected '[' (a JSON array of records) or '{' (JSON lines, one record per line)", null);
            }
            ok = true;
        } catch (IOException e) {
            throw unreadable(e);
        } finally {
            if (!ok) {
                closeQuietly();
            }
        }
    }

    /** Opens a dataset file. */
    public static ConversationReader open(Path file) {
        String source = file.toString();
        InputStream stream;
        try {
            stream = Files.newInputStream(file);
        } catch (NoSuchFileException e) {
            throw DataException.file(source, "no such file (" + file.toAbsolutePath() + ")", e);
        } catch (IOException e) {
            throw DataException.file(source, "cannot open: " + e, e);
        }
        return new ConversationReader(stream, source);
    }

    /** Reads from a stream (closed with the reader); {@code source} names it in messages. */
    public static ConversationReader open(InputStream stream, String source) {
        if (stream == null) {
            throw DataException.file(source, "not found", null);
        }
        return new ConversationReader(stream, source);
    }

    /**
     * Reads image records ({@link Images#ACCEPTED}): an {@code image} or {@code images} field (a file name or a list),
     * LLaVA's {@code <image>} placeholders and {@code {"type": "image"}} content parts (which may name their file in
     * {@code image} or {@code path} instead), each placeholder becoming the template's {@code <start_of_image>} between
     * trimmed text parts; the placeholders must match the images in number. Returns this.
     */
    public ConversationReader images(Images policy) {
        this.images = java.util.Objects.requireNonNull(policy, "policy");
        return this;
    }

    /** The file, as named in messages. */
    public String source() {
        return source;
    }

    /** Whether the file is JSON lines (else a JSON array). */
    public boolean jsonLines() {
        return jsonLines;
    }

    /**
     * The next record, or null after the last.
     *
     * @throws DataException for what makes the rest of the file unreadable: an I/O error, invalid UTF-8, a syntax
     *                       error in a JSON array
     */
    public Result next() {
        if (done) {
            return null;
        }
        try {
            return jsonLines ? nextLine() : nextElement();
        } catch (CharacterCodingException e) {
            done = true;
            throw DataException.file(source, "not valid UTF-8 (after record " + (nextIndex - 1)
                    + (jsonLines ? ", line " + lineNo : "") + "): " + e, e);
        } catch (IOException e) {
            done = true;
            throw unreadable(e);
        }
    }

    private Result nextLine() throws IOException {
        while (true) {
            String line = in.readLine();
            if (line == null) {
                done = true;
                return null;
            }
            lineNo++;
            if (line.isBlank()) {
                continue;
            }
            if (firstContentLine == 0) {
                firstContentLine = lineNo;
            }
            int index = nextIndex++;
            JsonNode node;
            try (JsonParser p = MAPPER.getFactory().createParser(line)) {
                node = MAPPER.readTree(p);
                if (p.nextToken() != null) {
                    JsonLocation at = p.currentTokenLocation();
                    return bad(index, lineNo, Reason.INVALID_JSON, "more JSON after the record at line " + lineNo
                            + " column " + at.getColumnNr() + ": JSON lines holds exactly one record per line");
                }
            } catch (JsonProcessingException e) {
                JsonLocation at = e.getLocation();
                String detail = "line " + lineNo + ", column " + (at == null ? "?" : at.getColumnNr()) + ": "
                        + e.getOriginalMessage();
                if (e instanceof JsonEOFException && lineNo == firstContentLine) {
                    detail += " (the file starts with '{', so it is read as JSON lines, one complete record per"
                            + " line; a record spread over several lines, or records not inside [...], is neither"
                            + " JSON lines nor a JSON array)";
                }
                return bad(index, lineNo, Reason.INVALID_JSON, detail);
            }
            return parse(node, index, lineNo);
        }
    }

    private Result nextElement() throws IOException {
        int index = nextIndex;
        int line = 0;
        try {
            if (!started) {
                array.nextToken(); // '[' (checked when opening)
                started = true;
            }
            JsonToken t = array.nextToken();
            if (t == null) {
                done = true;
                throw new DataException(source, index, array.currentLocation().getLineNr(), Reason.INVALID_JSON,
                        "the file ends inside the JSON array (no closing ']')");
            }
            if (t == JsonToken.END_ARRAY) {
                JsonToken after = array.nextToken();
                done = true;
                if (after != null) {
                    JsonLocation at = array.currentTokenLocation();
                    throw new DataException(source, -1, at.getLineNr(), Reason.INVALID_JSON, "more JSON after the"
                            + " array's closing ']' (line " + at.getLineNr() + " column " + at.getColumnNr()
                            + "): a JSON dataset is one array of records");
                }
                return null;
            }
            nextIndex++;
            line = array.currentTokenLocation().getLineNr();
            if (t != JsonToken.START_OBJECT) {
                String what = describe(t);
                array.skipChildren();
                return bad(index, line, Reason.NOT_AN_OBJECT, "the record is " + what
                        + ", expected an object with \"conversations\" or \"messages\"");
            }
            JsonNode node = MAPPER.readTree(array);
            return parse(node, index, line);
        } catch (JsonProcessingException e) {
            done = true;
            JsonLocation at = e.getLocation();
            int errLine = at == null ? line : at.getLineNr();
            throw new DataException(source, index, line > 0 ? line : errLine, Reason.INVALID_JSON,
                    "line " + errLine + ", column " + (at == null ? "?" : at.getColumnNr()) + ": "
                            + e.getOriginalMessage() + " (a syntax error in a JSON array ends the file: records after"
                            + " it cannot be read, even with --skip_bad_records; fix the file)", e);
        }
    }

    // ---- record validation ------------------------------------------------------------------------------------

    private Result parse(JsonNode node, int index, int line) {
        if (!node.isObject()) {
            return bad(index, line, Reason.NOT_AN_OBJECT, "the record is " + describe(node)
                    + ", expected an object with \"conversations\" or \"messages\"");
        }
        for (String videoField : new String[] {"video", "videos"}) {
            JsonNode v = node.get(videoField);
            if (v != null && !v.isNull() && !(v.isArray() && v.isEmpty())) {
                return bad(index, line, Reason.VIDEO, "the record has a \"" + videoField + "\" field: " + VIDEO_NOT_BUILT);
            }
        }
        List<String> files = new ArrayList<>(); // the record's image field, in order
        for (String imageField : new String[] {"image", "images"}) {
            JsonNode img = node.get(imageField);
            if (img != null && !img.isNull() && !(img.isArray() && img.isEmpty())) {
                if (images == Images.REFUSED) {
                    return bad(index, line, Reason.IMAGE, "the record has an \"" + imageField + "\" field: this model is"
                            + " Gemma 3's text model only (an image-text checkpoint, 4B and up, trains on images); remove"
                            + " image records from the dataset");
                }
                if (!files.isEmpty()) {
                    return bad(index, line, Reason.IMAGE_COUNT, "the record has both \"image\" and \"images\": keep one");
                }
                for (JsonNode f : img.isArray() ? img : List.of(img)) {
                    if (!f.isTextual() || f.asText().isBlank()) {
                        return bad(index, line, Reason.NON_STRING_VALUE, "\"" + imageField + "\" holds " + describe(f)
                                + ", expected a file name (or a list of them)");
                    }
                    files.add(f.asText());
                }
            }
        }
        List<String> partFiles = new ArrayList<>(); // files named by image content parts themselves
        int placeholders = 0;
        JsonNode conversations = node.get("conversations");
        JsonNode messages = node.get("messages");
        if (conversations != null && messages != null) {
            return bad(index, line, Reason.MISSING_CONVERSATIONS,
                    "the record has both \"conversations\" and \"messages\": keep one");
        }
        if (conversations == null && messages == null) {
            List<String> fields = new ArrayList<>();
            node.fieldNames().forEachRemaining(fields::add);
            return bad(index, line, Reason.MISSING_CONVERSATIONS, "no \"conversations\" (LLaVA) or \"messages\" field"
                    + " (the record's fields: " + (fields.isEmpty() ? "none" : String.join(", ", fields)) + ")");
        }
        boolean llava = conversations != null;
        String key = llava ? "conversations" : "messages";
        JsonNode turns = llava ? conversations : messages;
        if (!turns.isArray()) {
            return bad(index, line, Reason.MISSING_CONVERSATIONS, "\"" + key + "\" is " + describe(turns)
                    + ", expected an array of turns");
        }
        if (turns.isEmpty()) {
            return bad(index, line, Reason.MISSING_CONVERSATIONS, "\"" + key + "\" is an empty array");
        }
        String roleKey = llava ? "from" : "role";
        String textKey = llava ? "value" : "content";
        String turnWord = llava ? "turn " : "message ";
        List<Message> out = new ArrayList<>(turns.size());
        boolean anyAssistant = false;
        int i = 0;
        for (Iterator<JsonNode> it = turns.elements(); it.hasNext(); i++) {
            JsonNode turn = it.next();
            String where = turnWord + i;
            if (!turn.isObject()) {
                return bad(index, line, Reason.NOT_AN_OBJECT, where + " is " + describe(turn) + ", expected an object"
                        + " with \"" + roleKey + "\" and \"" + textKey + "\"");
            }
            JsonNode roleNode = turn.get(roleKey);
            if (roleNode == null) {
                return bad(index, line, Reason.MISSING_FIELD, where + " has no \"" + roleKey + "\"");
            }
            if (!roleNode.isTextual()) {
                return bad(index, line, Reason.NON_STRING_VALUE, where + "'s \"" + roleKey + "\" is "
                        + describe(roleNode) + ", expected a string");
            }
            String role = ROLES.get(roleNode.asText());
            if (role == null) {
                return bad(index, line, Reason.UNKNOWN_ROLE, where + " has \"" + roleKey + "\": "
                        + quote(roleNode.asText()) + "; expected "
                        + (llava ? "human, gpt or system (or user, assistant, model)"
                        : "user, assistant (or model) or system (or human, gpt)"));
            }
            JsonNode textNode = turn.get(textKey);
            if (textNode == null) {
                return bad(index, line, Reason.MISSING_FIELD, where + " has no \"" + textKey + "\"");
            }
            String text;
            if (textNode.isTextual()) {
                text = textNode.asText();
            } else if (!llava && textNode.isArray()) {
                List<String> contentParts = new ArrayList<>(); // texts, null for an image (ChatTemplate.content)
                int j = 0;
                for (Iterator<JsonNode> parts = textNode.elements(); parts.hasNext(); j++) {
                    JsonNode part = parts.next();
                    String pw = where + "'s content part " + j;
                    if (!part.isObject()) {
                        return bad(index, line, Reason.NOT_AN_OBJECT, pw + " is " + describe(part)
                                + ", expected {\"type\": \"text\", \"text\": ...}");
                    }
                    JsonNode type = part.get("type");
                    String typeName = type == null || !type.isTextual() ? null : type.asText();
                    if ("video".equals(typeName)) {
                        return bad(index, line, Reason.VIDEO, pw + " is a video: " + VIDEO_NOT_BUILT);
                    }
                    if (typeName != null && (typeName.equals("image") || typeName.equals("image_url"))) {
                        if (images == Images.REFUSED) {
                            return bad(index, line, Reason.IMAGE, pw + " is an image: this model is Gemma 3's text model"
                                    + " only; remove image records from the dataset");
                        }
                        if (typeName.equals("image_url")) {
                            return bad(index, line, Reason.UNSUPPORTED_CONTENT, pw + " is an image_url: jtune reads image"
                                    + " files (name them in the record's \"image\" field or the part's \"image\"), not URLs");
                        }
                        JsonNode named = part.has("image") ? part.get("image") : part.get("path");
                        if (named != null && !named.isNull()) {
                            if (!named.isTextual() || named.asText().isBlank()) {
                                return bad(index, line, Reason.NON_STRING_VALUE, pw + " names its image by " + describe(named)
                                        + ", expected a file name");
                            }
                            partFiles.add(named.asText());
                        }
                        placeholders++;
                        contentParts.add(null);
                        continue;
                    }
                    if (typeName == null || !typeName.equals("text")) {
                        return bad(index, line, Reason.UNSUPPORTED_CONTENT, pw + " has \"type\": "
                                + (type == null ? "none" : type.isTextual() ? quote(typeName) : describe(type))
                                + "; only {\"type\": \"text\", \"text\": ...} parts are supported");
                    }
                    JsonNode partText = part.get("text");
                    if (partText == null) {
                        return bad(index, line, Reason.MISSING_FIELD, pw + " has no \"text\"");
                    }
                    if (!partText.isTextual()) {
                        return bad(index, line, Reason.NON_STRING_VALUE, pw + "'s \"text\" is "
                                + describe(partText) + ", expected a string");
                    }
                    contentParts.add(partText.asText());
                }
                text = dev.jtune.gemma.tokenizer.ChatTemplate.content(contentParts); // the template: {{ item['text'] | trim }}, images as <start_of_image>
            } else {
                return bad(index, line, Reason.NON_STRING_VALUE, where + "'s \"" + textKey + "\" is "
                        + describe(textNode) + ", expected a string" + (llava ? "" : " or a list of text parts"));
            }
            if (text.contains("<image>")) {
                if (images == Images.REFUSED) {
                    return bad(index, line, Reason.IMAGE, where + " contains LLaVA's image placeholder <image>: this"
                            + " model is Gemma 3's text model only; remove image records from the dataset");
                }
                // as a list content: the texts between placeholders trimmed, each <image> an image part
                List<String> parts = new ArrayList<>();
                int from = 0;
                for (int at = text.indexOf("<image>"); at >= 0; at = text.indexOf("<image>", from)) {
                    parts.add(text.substring(from, at));
                    parts.add(null);
                    placeholders++;
                    from = at + "<image>".length();
                }
                parts.add(text.substring(from));
                text = dev.jtune.gemma.tokenizer.ChatTemplate.content(parts);
            }
            if (dev.jtune.gemma.tokenizer.ChatTemplate.pythonStrip(text).isEmpty()) {
                return bad(index, line, Reason.EMPTY_CONTENT, where + " (" + roleKey + " "
                        + quote(roleNode.asText()) + ") has " + (text.isEmpty() ? "an empty" : "a blank")
                        + " \"" + textKey + "\"");
            }
            anyAssistant |= role.equals("assistant");
            out.add(new Message(role, text));
        }
        if (!anyAssistant) {
            return bad(index, line, Reason.NO_ASSISTANT_TURN, "no " + (llava ? "gpt" : "assistant")
                    + " turn: the loss is computed on the model's answers, and this record has none");
        }
        if (!partFiles.isEmpty() && !files.isEmpty()) {
            return bad(index, line, Reason.IMAGE_COUNT, "images are named both by the record's image field and by its"
                    + " content parts: name them one way");
        }
        List<String> named = partFiles.isEmpty() ? files : partFiles;
        if (!partFiles.isEmpty() && partFiles.size() != placeholders) {
            return bad(index, line, Reason.IMAGE_COUNT, placeholders + " image parts, of which " + partFiles.size()
                    + " name their file: name every one, or list them in the record's \"images\"");
        }
        if (named.size() != placeholders) {
            return bad(index, line, Reason.IMAGE_COUNT, placeholders + " image placeholder(s) (<image> or image parts) but "
                    + named.size() + " image file(s)" + (named.isEmpty() ? "" : " " + named));
        }
        return new Result.Ok(new Conversation(source, index, line, llava, out, named));
    }

    private static final Map<String, String> ROLES = Map.of(
            "human", "user", "user", "user",
            "gpt", "assistant", "assistant", "assistant", "model", "assistant",
            "system", "system");

    private Result bad(int index, int line, Reason reason, String detail) {
        return new Result.Bad(new DataException(source, index, line, reason, detail));
    }

    private static String quote(String s) {
        String q = s.length() > 40 ? s.substring(0, 40) + "..." : s;
        return "\"" + q.replace("\n", "\\n") + "\"";
    }

    private static String describe(JsonNode n) {
        if (n.isTextual()) {
            return "a string (" + quote(n.asText()) + ")";
        }
        if (n.isNumber()) {
            return "a number (" + n.asText() + ")";
        }
        if (n.isBoolean()) {
            return "a boolean (" + n.asText() + ")";
        }
        if (n.isNull()) {
            return "null";
        }
        if (n.isArray()) {
            return "an array";
        }
        if (n.isObject()) {
            return "an object";
        }
        return n.getNodeType().toString().toLowerCase();
    }

    private static String describe(JsonToken t) {
        return switch (t) {
            case START_ARRAY -> "an array";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            default -> t.toString();
        };
    }

    // ---- plumbing -----------------------------------------------------------------------------------------------

    /** The first character that is not whitespace (or a leading byte order mark, which is dropped); -1 if none. */
    private int firstNonSpace() throws IOException {
        final int limit = 1 << 16;
        in.mark(limit);
        int c;
        int read = 0;
        boolean bom = false;
        while ((c = in.read()) != -1) {
            read++;
            if (read == 1 && c == '\uFEFF') {
                bom = true;
            } else if (!Character.isWhitespace(c)) {
                break;
            } else if (read >= limit - 1) {
                throw DataException.file(source, "starts with more than " + (limit - 1) + " whitespace characters", null);
            }
        }
        in.reset();
        if (bom) {
            in.read(); // drop the byte order mark
        }
        return c;
    }

    private DataException unreadable(IOException e) {
        if (e instanceof CharacterCodingException) {
            return DataException.file(source, "not valid UTF-8: " + e, e);
        }
        return DataException.file(source, "cannot read: " + e, e);
    }

    private void closeQuietly() {
        try {
            close();
        } catch (IOException ignored) {
            // already failing
        }
    }

    @Override
    public void close() throws IOException {
        done = true;
        try {
            if (array != null) {
                array.close();
            }
        } finally {
            in.close();
        }
    }
}
