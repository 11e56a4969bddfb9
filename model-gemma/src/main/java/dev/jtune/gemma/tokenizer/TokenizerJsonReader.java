package dev.jtune.gemma.tokenizer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonFactoryBuilder;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;

/**
 * Reads a HF tokenizer.json with Jackson's streaming parser, without a tree of the big sections:
 * <ul>
 * <li>model.vocab (262,144 entries on Gemma 3) goes straight into an id-indexed {@code String[]} (each key is
 * the one {@code String} kept for its token), then into a {@link VocabIndex};</li>
 * <li>model.merges (514,906) are copied from the parser's character buffer into chunks of 8,192 merges (no
 * {@code String}s), which a second thread resolves (left id, right id, merged id) and enters into the merges
 * table while the parser reads on: the look-ups are memory-bound and would otherwise double the time on the
 * parser's thread (when merges precede the vocabulary, which HF never writes, they wait for it);</li>
 * <li>added_tokens are streamed into records; the small component sections (normalizer, pre_tokenizer,
 * post_processor, decoder) are read as trees, built without an ObjectMapper (whose start-up a cold JVM pays).</li>
 * </ul>
 * With {@link GunzipPipe} inflating on a third thread, the real Gemma 3 file loads in about 0.2 s warm.
 */
final class TokenizerJsonReader {
    private static final JsonFactory FACTORY = new JsonFactoryBuilder()
            // 262K distinct keys: interning them would only cost time. (Canonicalisation stays on: without it
            // Jackson reads a byte stream through a Reader-based parser, twice as slow.)
            .disable(JsonFactory.Feature.INTERN_FIELD_NAMES)
            .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(Integer.MAX_VALUE).build())
            .build();

    /** Everything the tokenizer is built from. */
    record Loaded(String source, String[] vocab, VocabIndex vocabIndex, BpeModel model, List<AddedToken> addedTokens,
                  Normalizer normalizer, PreTokenizer preTokenizer, Decoder decoder, List<String> templatePrefix,
                  List<String> templateSuffix, boolean hasPostProcessor) {
    }

    private final String source;
    private final List<AddedToken> added = new ArrayList<>();
    private JsonNode normalizerNode;
    private JsonNode preTokenizerNode;
    private JsonNode postProcessorNode;
    private JsonNode decoderNode;
    private boolean sawModel;

    // model section
    private String modelType;
    private boolean byteFallback;
    private boolean fuseUnk;
    private boolean ignoreMerges;
    private String unkToken;
    private String[] vocab;
    private VocabIndex vocabIndex;
    private LongLongMap merges;          // (left << 32 | right) -> (rank << 32 | merged), built while streaming
    private boolean[] isByteToken;       // id -> is a <0xNN> token
    private boolean mergesTouchBytes;
    private int mergeCount;
    private List<MergeChunk> pendingChunks; // merges seen before the vocabulary: resolved after it

    private TokenizerJsonReader(String source) {
        this.source = source;
    }

    static Loaded read(InputStream in, String source) {
        TokenizerJsonReader r = new TokenizerJsonReader(source);
        try (JsonParser p = FACTORY.createParser(in)) {
            r.readTop(p);
        } catch (JsonProcessingException e) {
            throw new TokenizerException(source + ": malformed JSON: " + e.getOriginalMessage()
                    + (e.getLocation() != null ? " (line " + e.getLocation().getLineNr() + ", column "
                    + e.getLocation().getColumnNr() + ")" : ""), e);
        } catch (IOException e) {
            throw new TokenizerException(source + ": cannot read: " + e, e);
        }
        return r.build();
    }

    private void readTop(JsonParser p) throws IOException {
        if (p.nextToken() != JsonToken.START_OBJECT) {
            throw Json.error(source, "$", "expected a JSON object at the top level, found " + p.currentToken());
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String name = p.currentName();
            p.nextToken();
            switch (name) {
                case "added_tokens" -> readAddedTokens(p);
                case "normalizer" -> normalizerNode = readTree(p);
                case "pre_tokenizer" -> preTokenizerNode = readTree(p);
                case "post_processor" -> postProcessorNode = readTree(p);
                case "decoder" -> decoderNode = readTree(p);
                case "model" -> readModel(p);
                default -> p.skipChildren();
            }
        }
        if (p.currentToken() != JsonToken.END_OBJECT) {
            throw Json.error(source, "$", "unexpected " + p.currentToken());
        }
    }

    /**
     * Reads the value at the current token as a tree. Built by hand with {@link JsonNodeFactory} rather than an
     * {@code ObjectMapper}, whose start-up would cost a cold JVM a few hundred milliseconds.
     */
    private static JsonNode readTree(JsonParser p) throws IOException {
        JsonNodeFactory f = JsonNodeFactory.instance;
        JsonToken t = p.currentToken();
        switch (t) {
            case START_OBJECT -> {
                ObjectNode o = f.objectNode();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    p.nextToken();
                    o.set(name, readTree(p));
                }
                return o;
            }
            case START_ARRAY -> {
                ArrayNode a = f.arrayNode();
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    a.add(readTree(p));
                }
                return a;
            }
            case VALUE_STRING -> {
                return f.textNode(p.getText());
            }
            case VALUE_NUMBER_INT -> {
                return p.getNumberType() == JsonParser.NumberType.INT ? f.numberNode(p.getIntValue())
                        : f.numberNode(p.getLongValue());
            }
            case VALUE_NUMBER_FLOAT -> {
                return f.numberNode(p.getDoubleValue());
            }
            case VALUE_TRUE -> {
                return f.booleanNode(true);
            }
            case VALUE_FALSE -> {
                return f.booleanNode(false);
            }
            case VALUE_NULL -> {
                return f.nullNode();
            }
            default -> throw new JsonParseExceptionLike(p, "unexpected token " + t);
        }
    }

    /** A parse error found while building a tree, reported like Jackson's own. */
    private static final class JsonParseExceptionLike extends com.fasterxml.jackson.core.JsonParseException {
        JsonParseExceptionLike(JsonParser p, String message) {
            super(p, message);
        }
    }

    /** Streams the added_tokens array into records. */
    private void readAddedTokens(JsonParser p) throws IOException {
        if (p.currentToken() == JsonToken.VALUE_NULL) {
            return;
        }
        if (p.currentToken() != JsonToken.START_ARRAY) {
            throw Json.error(source, "added_tokens", "expected an array, found " + p.currentToken());
        }
        int i = 0;
        while (p.nextToken() != JsonToken.END_ARRAY) {
            String path = "added_tokens[" + i + "]";
            if (p.currentToken() != JsonToken.START_OBJECT) {
                throw Json.error(source, path, "expected an object, found " + p.currentToken());
            }
            Integer id = null;
            String content = null;
            boolean singleWord = false;
            boolean lstrip = false;
            boolean rstrip = false;
            boolean normalized = true;
            boolean special = false;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken t = p.nextToken();
                switch (name) {
                    case "id" -> {
                        if (t != JsonToken.VALUE_NUMBER_INT) {
                            throw Json.error(source, path + ".id", "expected an integer, found " + t);
                        }
                        id = p.getIntValue();
                    }
                    case "content" -> {
                        if (t != JsonToken.VALUE_STRING) {
                            throw Json.error(source, path + ".content", "expected a string, found " + t);
                        }
                        content = p.getText();
                    }
                    case "single_word" -> singleWord = bool(p, path + ".single_word");
                    case "lstrip" -> lstrip = bool(p, path + ".lstrip");
                    case "rstrip" -> rstrip = bool(p, path + ".rstrip");
                    case "normalized" -> normalized = t == JsonToken.VALUE_NULL || bool(p, path + ".normalized");
                    case "special" -> special = bool(p, path + ".special");
                    default -> p.skipChildren();
                }
            }
            if (id == null || content == null) {
                throw Json.error(source, path, "needs an integer \"id\" and a string \"content\"");
            }
            added.add(new AddedToken(id, content, singleWord, lstrip, rstrip, normalized, special));
            i++;
        }
    }

    private void readModel(JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw Json.error(source, "model", "expected an object, found " + p.currentToken());
        }
        sawModel = true;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String name = p.currentName();
            JsonToken t = p.nextToken();
            switch (name) {
                case "type" -> {
                    modelType = p.getValueAsString();
                    if (!"BPE".equals(modelType)) {
                        throw Json.unsupported(source, "model.type", "model", String.valueOf(modelType), "BPE");
                    }
                }
                case "vocab" -> readVocab(p);
                case "merges" -> readMerges(p);
                case "byte_fallback" -> byteFallback = bool(p, "model.byte_fallback");
                case "fuse_unk" -> fuseUnk = bool(p, "model.fuse_unk");
                case "ignore_merges" -> ignoreMerges = bool(p, "model.ignore_merges");
                case "unk_token" -> unkToken = t == JsonToken.VALUE_NULL ? null : p.getValueAsString();
                case "dropout" -> {
                    if (t != JsonToken.VALUE_NULL && p.getDoubleValue() != 0.0) {
                        throw Json.error(source, "model.dropout", "BPE dropout (" + p.getDoubleValue()
                                + ") is not supported: encoding must be deterministic");
                    }
                }
                case "continuing_subword_prefix", "end_of_word_suffix" -> {
                    if (t != JsonToken.VALUE_NULL && !p.getValueAsString().isEmpty()) {
                        throw Json.error(source, "model." + name, "'" + p.getValueAsString()
                                + "' is not supported (only null)");
                    }
                }
                default -> p.skipChildren();
            }
        }
        if (modelType == null) {
            throw Json.error(source, "model.type", "missing (expected \"BPE\")");
        }
    }

    private boolean bool(JsonParser p, String path) throws IOException {
        JsonToken t = p.currentToken();
        if (t == JsonToken.VALUE_TRUE) {
            return true;
        }
        if (t == JsonToken.VALUE_FALSE || t == JsonToken.VALUE_NULL) {
            return false;
        }
        throw Json.error(source, path, "expected a boolean, found " + t);
    }

    private void readVocab(JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw Json.error(source, "model.vocab", "expected an object of token -> id, found " + p.currentToken());
        }
        String[] byId = new String[1 << 18];
        int maxId = -1;
        int count = 0;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String token = p.currentName();
            if (p.nextToken() != JsonToken.VALUE_NUMBER_INT) {
                throw Json.error(source, "model.vocab[\"" + token + "\"]", "expected an integer id, found " + p.currentToken());
            }
            int id = p.getIntValue();
            if (id < 0) {
                throw Json.error(source, "model.vocab[\"" + token + "\"]", "negative id " + id);
            }
            if (id >= byId.length) {
                byId = Arrays.copyOf(byId, Math.max(id + 1, byId.length * 2));
            }
            if (byId[id] != null) {
                throw Json.error(source, "model.vocab[\"" + token + "\"]", "id " + id + " is also used by '" + byId[id] + "'");
            }
            byId[id] = token;
            maxId = Math.max(maxId, id);
            count++;
        }
        vocab = Arrays.copyOf(byId, maxId + 1);
        if (count != vocab.length) {
            throw Json.error(source, "model.vocab", count + " entries but ids up to " + maxId + ": ids must be 0.." + (count - 1));
        }
        vocabIndex = new VocabIndex(vocab);
        isByteToken = new boolean[vocab.length];
        for (int id = 0; id < vocab.length; id++) {
            String t = vocab[id];
            isByteToken[id] = t.length() == 6 && t.startsWith("<0x") && Decoder.ByteFallback.byteOf(t) >= 0;
        }
        merges = new LongLongMap(Math.max(1 << 12, vocab.length * 2));
        if (pendingChunks != null) {
            for (MergeChunk c : pendingChunks) {
                resolveChunk(c);
            }
        }
    }

    /** A batch of merges as raw characters: merge i is {@code chars[ends[2i-1], ends[2i])} and {@code [.., ends[2i+1])}. */
    private static final class MergeChunk {
        static final int MERGES = 8192;
        char[] chars = new char[MERGES * 12];
        final int[] ends = new int[MERGES * 2];
        int firstRank;
        int count;
        int used;

        MergeChunk(int firstRank) {
            this.firstRank = firstRank;
        }

        /** Empties a resolved chunk for reuse. */
        MergeChunk reset(int newFirstRank) {
            firstRank = newFirstRank;
            count = 0;
            used = 0;
            halfDone = false;
            return this;
        }

        boolean full() {
            return count == MERGES;
        }

        void add(char[] buf, int off, int len) {
            if (used + len > chars.length) {
                chars = Arrays.copyOf(chars, Math.max(used + len, chars.length * 2));
            }
            System.arraycopy(buf, off, chars, used, len);
            used += len;
            ends[count * 2 + (halfDone ? 1 : 0)] = used;
            if (halfDone) {
                count++;
            }
            halfDone = !halfDone;
        }

        private boolean halfDone;

        void add(String s) {
            add(s.toCharArray(), 0, s.length());
        }
    }

    private static final MergeChunk NO_MORE = new MergeChunk(-1);

    /** Resolves a chunk's strings to ids and enters the merges into the table (on the resolver thread). */
    private void resolveChunk(MergeChunk c) {
        int from = 0;
        for (int i = 0; i < c.count; i++) {
            int rank = c.firstRank + i;
            int mid = c.ends[2 * i];
            int end = c.ends[2 * i + 1];
            int a = vocabIndex.find(c.chars, from, mid - from);
            if (a < 0) {
                throw Json.error(source, "model.merges[" + rank + "]", "token '" + new String(c.chars, from, mid - from)
                        + "' is not in model.vocab");
            }
            int b = vocabIndex.find(c.chars, mid, end - mid);
            if (b < 0) {
                throw Json.error(source, "model.merges[" + rank + "]", "token '" + new String(c.chars, mid, end - mid)
                        + "' is not in model.vocab");
            }
            addMerge(a, b);
            from = end;
        }
    }

    private void addMerge(int a, int b) {
        int rank = mergeCount++;
        int merged = vocabIndex.getConcat(a, b);
        if (merged < 0) {
            throw Json.error(source, "model.merges[" + rank + "]", "the merged token '" + vocab[a] + vocab[b]
                    + "' of ('" + vocab[a] + "', '" + vocab[b] + "') is not in model.vocab");
        }
        merges.put(((long) a << 32) | b, ((long) rank << 32) | merged); // a repeated pair keeps its last rank, as HF
        if (isByteToken[a] || isByteToken[b]) {
            mergesTouchBytes = true;
        }
    }

    /**
     * Streams model.merges into chunks of characters. When the vocabulary is already known (it precedes the merges
     * in every file HF writes) a second thread resolves each chunk while the parser reads the next, the look-ups
     * being memory-bound; otherwise the chunks wait for the vocabulary.
     */
    private void readMerges(JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_ARRAY) {
            throw Json.error(source, "model.merges", "expected an array, found " + p.currentToken());
        }
        if (pendingChunks != null) {
            throw Json.error(source, "model.merges", "appears twice");
        }
        BlockingQueue<MergeChunk> queue = null;
        BlockingQueue<MergeChunk> free = new ArrayBlockingQueue<>(8); // resolved chunks, for reuse
        Thread resolver = null;
        Throwable[] failure = new Throwable[1];
        if (vocabIndex != null) {
            BlockingQueue<MergeChunk> q = new ArrayBlockingQueue<>(64);
            queue = q;
            resolver = new Thread(() -> {
                try {
                    // after a failure, chunks are still taken (and skipped) so the parser never blocks
                    for (MergeChunk c = q.take(); c != NO_MORE; c = q.take()) {
                        if (failure[0] == null) {
                            try {
                                resolveChunk(c);
                            } catch (Throwable e) { // recorded, rethrown on the parser's thread
                                failure[0] = e;
                            }
                            free.offer(c);
                        }
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "jtune-tokenizer-merges");
            resolver.setDaemon(true);
            resolver.start();
        } else {
            pendingChunks = new ArrayList<>();
        }
        int rank = 0;
        MergeChunk chunk = new MergeChunk(0);
        try {
            JsonToken t;
            while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                if (t == JsonToken.START_ARRAY) { // ["a", "b"] (current format)
                    for (int k = 0; k < 2; k++) {
                        if (p.nextToken() != JsonToken.VALUE_STRING) {
                            throw Json.error(source, "model.merges[" + rank + "]", "expected [\"left\", \"right\"], found "
                                    + p.currentToken());
                        }
                        chunk.add(p.getTextCharacters(), p.getTextOffset(), p.getTextLength());
                    }
                    if (p.nextToken() != JsonToken.END_ARRAY) {
                        throw Json.error(source, "model.merges[" + rank + "]", "expected exactly two strings");
                    }
                } else if (t == JsonToken.VALUE_STRING) { // "a b" (older format)
                    String line = p.getText();
                    int sp = line.indexOf(' ');
                    if (sp < 0 || line.indexOf(' ', sp + 1) >= 0) {
                        throw Json.error(source, "model.merges[" + rank + "]", "expected \"left right\", found '" + line + "'");
                    }
                    chunk.add(line.substring(0, sp));
                    chunk.add(line.substring(sp + 1));
                } else {
                    throw Json.error(source, "model.merges[" + rank + "]", "expected a pair, found " + t);
                }
                rank++;
                if (chunk.full()) {
                    submit(chunk, queue);
                    MergeChunk reused = queue != null ? free.poll() : null;
                    chunk = reused != null ? reused.reset(rank) : new MergeChunk(rank);
                }
            }
            submit(chunk, queue);
        } finally {
            if (queue != null) {
                putUninterruptibly(queue, NO_MORE);
                try {
                    resolver.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new TokenizerException(source + ": interrupted while reading merges", e);
                }
            }
        }
        if (failure[0] instanceof RuntimeException e) {
            throw e;
        }
        if (failure[0] instanceof Error e) {
            throw e;
        }
    }

    private void submit(MergeChunk chunk, BlockingQueue<MergeChunk> queue) {
        if (chunk.count == 0) {
            return;
        }
        if (queue == null) {
            pendingChunks.add(chunk);
        } else {
            putUninterruptibly(queue, chunk);
        }
    }

    private static void putUninterruptibly(BlockingQueue<MergeChunk> queue, MergeChunk chunk) {
        boolean interrupted = false;
        while (true) {
            try {
                queue.put(chunk);
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private Loaded build() {
        if (!sawModel) {
            throw Json.error(source, "model", "missing: not a tokenizer.json?");
        }
        if (vocab == null) {
            throw Json.error(source, "model.vocab", "missing");
        }
        Normalizer normalizer = Normalizer.fromJson(normalizerNode, "normalizer", source);
        PreTokenizer preTokenizer = PreTokenizer.fromJson(preTokenizerNode, "pre_tokenizer", source);
        Decoder decoder = Decoder.fromJson(decoderNode, "decoder", source);
        List<String> prefix = new ArrayList<>();
        List<String> suffix = new ArrayList<>();
        boolean hasPost = postProcessorNode != null && !postProcessorNode.isNull();
        if (hasPost) {
            readTemplate(prefix, suffix);
        }
        if (merges == null) {
            merges = new LongLongMap(16);
        }
        BpeModel model = new BpeModel(vocab, vocabIndex, merges, mergesTouchBytes, byteFallback, fuseUnk,
                ignoreMerges, unkToken, source);
        return new Loaded(source, vocab, vocabIndex, model, List.copyOf(added), normalizer, preTokenizer, decoder,
                List.copyOf(prefix), List.copyOf(suffix), hasPost);
    }

    /** TemplateProcessing's "single": the special tokens before and after the sequence. */
    private void readTemplate(List<String> prefix, List<String> suffix) {
        String type = Json.type(postProcessorNode, "post_processor", source);
        if (!type.equals("TemplateProcessing")) {
            throw Json.unsupported(source, "post_processor", "post-processor", type, "TemplateProcessing");
        }
        JsonNode single = postProcessorNode.get("single");
        if (single == null || !single.isArray()) {
            throw Json.error(source, "post_processor.single", "expected an array");
        }
        boolean seenSequence = false;
        for (int i = 0; i < single.size(); i++) {
            JsonNode piece = single.get(i);
            String path = "post_processor.single[" + i + "]";
            if (piece.has("Sequence")) {
                if (seenSequence) {
                    throw Json.error(source, path, "a second sequence in the single-sequence template");
                }
                seenSequence = true;
            } else if (piece.has("SpecialToken")) {
                String name = Json.text(piece.get("SpecialToken"), "id", path + ".SpecialToken", source);
                JsonNode special = postProcessorNode.path("special_tokens").path(name).path("tokens");
                List<String> toks = new ArrayList<>();
                if (special.isArray() && !special.isEmpty()) {
                    special.forEach(n -> toks.add(n.asText()));
                } else {
                    toks.add(name);
                }
                (seenSequence ? suffix : prefix).addAll(toks);
            } else {
                throw Json.error(source, path, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}, found " + piece);
            }
        }
    }
}
