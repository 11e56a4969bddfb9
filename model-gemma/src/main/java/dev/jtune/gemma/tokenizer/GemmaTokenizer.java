package dev.jtune.gemma.tokenizer;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The Gemma 3 tokenizer, read from a HF {@code tokenizer.json} (plain or gzipped) and producing exactly the ids of
 * HF tokenizers (checked against tokenizers 0.23 on hard strings). Pipeline, as HF's {@code encode}:
 * <ol>
 * <li><b>added tokens</b> (6,415 on Gemma 3: {@code <bos>}, {@code <start_of_turn>}, newline runs, tab runs, HTML
 * tags, {@code <unusedN>}, ...) are found first, leftmost-longest, with their single_word / lstrip / rstrip
 * flags; the non-normalized ones in the raw text (all of Gemma 3's), the normalized ones after normalization;</li>
 * <li>each stretch between them is <b>normalized</b> (Gemma 3: every ' ' becomes '▁'),
 * <b>pre-tokenized</b> (Gemma 3: {@code Split(" ")}, which finds nothing after the normalizer) and encoded by the
 * {@link BpeModel BPE model} (byte fallback, no unk on Gemma 3);</li>
 * <li>{@link #encode(String, Bos) with Bos.ADD}, the post-processor's template is applied (Gemma 3:
 * {@code <bos> A}).</li>
 * </ol>
 * Decoding maps ids to tokens (optionally dropping special ones) and runs the file's decoder (Gemma 3: '▁' -> ' ',
 * byte fallback, fuse). Special tokens written in the text are recognised, as in HF; there is no option to treat
 * them as plain text.
 * <p>
 * Instances are immutable and thread-safe (the BPE word cache is concurrent). Load once and share.
 */
public final class GemmaTokenizer {
    /** Whether encoding applies the post-processor's template: for Gemma 3 a leading {@code <bos>}. */
    public enum Bos { ADD, OMIT }

    /** Whether decoding writes special added tokens ({@code <bos>}, {@code <end_of_turn>}, ...) or leaves them out. */
    public enum SpecialTokens { KEEP, SKIP }

    private final String source;
    private final String[] tokens;        // id -> token over model vocab and added tokens
    private final int modelVocabSize;
    private final VocabIndex modelIndex;
    private final java.util.Map<String, Integer> addedByContent;
    private final boolean[] special;
    private final BpeModel model;
    private final Normalizer normalizer;
    private final PreTokenizer preTokenizer;
    private final Decoder decoder;
    private final AddedTokenMatcher rawMatcher;        // added tokens with normalized = false
    private final AddedTokenMatcher normalizedMatcher; // added tokens with normalized = true
    private final List<AddedToken> addedTokens;
    private final int[] templatePrefix;
    private final int[] templateSuffix;
    private final int bosId;
    private final int eosId;
    private final int padId;
    private final int unkId;
    private final int startOfTurnId;
    private final int endOfTurnId;

    private GemmaTokenizer(TokenizerJsonReader.Loaded l) {
        source = l.source();
        modelVocabSize = l.vocab().length;
        modelIndex = l.vocabIndex();
        model = l.model();
        normalizer = l.normalizer();
        preTokenizer = l.preTokenizer();
        decoder = l.decoder();
        addedTokens = l.addedTokens();
        int size = modelVocabSize;
        for (AddedToken a : addedTokens) {
            if (a.id() < 0) {
                throw new TokenizerException(source + ": added token '" + a.content() + "' has a negative id " + a.id());
            }
            size = Math.max(size, a.id() + 1);
        }
        tokens = Arrays.copyOf(l.vocab(), size);
        special = new boolean[size];
        addedByContent = new java.util.HashMap<>();
        List<AddedToken> raw = new ArrayList<>();
        List<String> rawPatterns = new ArrayList<>();
        List<AddedToken> norm = new ArrayList<>();
        List<String> normPatterns = new ArrayList<>();
        // HF's order: special tokens first, then the others (only matters for identical contents)
        for (int pass = 0; pass < 2; pass++) {
            for (AddedToken a : addedTokens) {
                if (a.special() != (pass == 0)) {
                    continue;
                }
                if (a.id() < modelVocabSize && !a.content().equals(tokens[a.id()])) {
                    throw new TokenizerException(source + ": added token '" + a.content() + "' has id " + a.id()
                            + ", which the model vocabulary gives to '" + tokens[a.id()] + "'");
                }
                tokens[a.id()] = a.content();
                special[a.id()] = a.special();
                addedByContent.putIfAbsent(a.content(), a.id());
                if (a.normalized()) {
                    norm.add(a);
                    normPatterns.add(normalizer.normalize(a.content()));
                } else {
                    raw.add(a);
                    rawPatterns.add(a.content());
                }
            }
        }
        for (int i = 0; i < size; i++) {
            if (tokens[i] == null) {
                throw new TokenizerException(source + ": id " + i + " has no token (neither model.vocab nor added_tokens)");
            }
        }
        rawMatcher = new AddedTokenMatcher(raw, rawPatterns);
        normalizedMatcher = new AddedTokenMatcher(norm, normPatterns);
        bosId = tokenId("<bos>");
        eosId = tokenId("<eos>");
        padId = tokenId("<pad>");
        unkId = tokenId("<unk>");
        startOfTurnId = tokenId("<start_of_turn>");
        endOfTurnId = tokenId("<end_of_turn>");
        if (bosId < 0 || eosId < 0 || padId < 0 || startOfTurnId < 0 || endOfTurnId < 0) {
            throw new TokenizerException(source + ": not a Gemma 3 tokenizer: one of <bos>, <eos>, <pad>, "
                    + "<start_of_turn>, <end_of_turn> is missing");
        }
        if (l.hasPostProcessor()) {
            templatePrefix = idsOf(l.templatePrefix());
            templateSuffix = idsOf(l.templateSuffix());
        } else {
            templatePrefix = new int[] {bosId};
            templateSuffix = new int[0];
        }
    }

    private int[] idsOf(List<String> toks) {
        int[] ids = new int[toks.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = tokenId(toks.get(i));
            if (ids[i] < 0) {
                throw new TokenizerException(source + ": post_processor: special token '" + toks.get(i) + "' is not in the vocabulary");
            }
        }
        return ids;
    }

    // ---------------------------------------------------------------- loading

    /**
     * Loads a tokenizer.json, plain or gzipped (detected from its first bytes). A directory means its
     * {@code tokenizer.json} (or {@code tokenizer.json.gz}).
     *
     * @throws TokenizerException if the file is missing or unreadable, not valid JSON, or uses an unsupported model
     *                            or component
     */
    public static GemmaTokenizer load(Path path) {
        Path file = path;
        if (Files.isDirectory(path)) {
            file = path.resolve("tokenizer.json");
            if (!Files.exists(file) && Files.exists(path.resolve("tokenizer.json.gz"))) {
                file = path.resolve("tokenizer.json.gz");
            }
        }
        try (InputStream in = Files.newInputStream(file)) {
            return load(in, file.toString());
        } catch (NoSuchFileException e) {
            throw new TokenizerException("tokenizer file not found: " + file.toAbsolutePath()
                    + (file != path ? " (looked in directory " + path + ")" : ""), e);
        } catch (IOException e) {
            throw new TokenizerException("cannot read tokenizer file " + file.toAbsolutePath() + ": " + e, e);
        }
    }

    /** Loads from a stream (plain or gzipped JSON); {@code source} names it in error messages. Does not close it. */
    public static GemmaTokenizer load(InputStream in, String source) {
        if (in == null) {
            throw new TokenizerException("tokenizer not found: " + source + " (null stream)");
        }
        try {
            BufferedInputStream buffered = new BufferedInputStream(in, 1 << 16);
            buffered.mark(2);
            int b0 = buffered.read();
            int b1 = buffered.read();
            buffered.reset();
            if (b0 == 0x1f && b1 == 0x8b) {
                try (GunzipPipe json = new GunzipPipe(buffered)) { // inflates on a second thread while parsing
                    return new GemmaTokenizer(TokenizerJsonReader.read(json, source));
                }
            }
            return new GemmaTokenizer(TokenizerJsonReader.read(buffered, source));
        } catch (IOException e) {
            throw new TokenizerException(source + ": cannot read: " + e, e);
        }
    }

    /** Where the Gemma 3 tokenizer shipped in the jar lives (the real 262,144-entry tokenizer.json, gzipped). */
    public static final String BUNDLED = "/dev/jtune/gemma/tokenizer/gemma3-tokenizer.json.gz";

    /**
     * The Gemma 3 tokenizer shipped with jtune: the same tokenizer.json every Gemma 3 checkpoint carries (for a
     * model directory without one, and for the embedded default run).
     */
    public static GemmaTokenizer bundled() {
        return loadResource(GemmaTokenizer.class, BUNDLED);
    }

    /** Loads a classpath resource (plain or gzipped). */
    public static GemmaTokenizer loadResource(Class<?> anchor, String name) {
        try (InputStream in = anchor.getResourceAsStream(name)) {
            if (in == null) {
                throw new TokenizerException("tokenizer resource not found: " + name + " (relative to " + anchor.getName() + ")");
            }
            return load(in, "resource " + name);
        } catch (IOException e) {
            throw new TokenizerException("reading the tokenizer resource " + name, e);
        }
    }

    // ---------------------------------------------------------------- encoding

    /** The ids of {@code text}, without special tokens added (HF {@code add_special_tokens=False}). */
    public int[] encode(String text) {
        return encode(text, Bos.OMIT);
    }

    /**
     * The ids of {@code text}; with {@link Bos#ADD}, the post-processor's template is applied, which for Gemma 3 is
     * exactly a leading {@code <bos>} (HF {@code add_special_tokens=True}).
     */
    public int[] encode(String text, Bos bos) {
        boolean addBos = bos == Bos.ADD;
        IntList out = new IntList(Math.max(16, text.length() / 3));
        if (addBos) {
            out.addAll(templatePrefix);
        }
        encodeInto(text, out, null);
        if (addBos) {
            out.addAll(templateSuffix);
        }
        return out.toArray();
    }

    /**
     * Encodes, appending ids to {@code out}; if {@code spans} is given it receives, per id, the {@code [start, end)}
     * char range of the stretch of {@code text} it came from (an added token's match, or the text between two).
     */
    void encodeInto(String text, IntList out, IntList spans) {
        int n = text.length();
        if (n == 0) {
            return;
        }
        IntList splits = new IntList(16);
        rawMatcher.split(text, 0, n, splits);
        List<String> pieces = new ArrayList<>();
        for (int k = 0; k < splits.size(); k += 3) {
            int start = splits.get(k);
            int end = splits.get(k + 1);
            int id = splits.get(k + 2);
            int before = out.size();
            if (id >= 0) {
                out.add(id);
            } else {
                encodeStretch(text.substring(start, end), out, pieces);
            }
            if (spans != null) {
                for (int i = before; i < out.size(); i++) {
                    spans.add(start);
                    spans.add(end);
                }
            }
        }
    }

    private void encodeStretch(String raw, IntList out, List<String> pieces) {
        String s = normalizer.normalize(raw);
        if (normalizedMatcher.isEmpty()) {
            preTokenizeAndEncode(s, out, pieces);
            return;
        }
        IntList splits = new IntList(8);
        normalizedMatcher.split(s, 0, s.length(), splits);
        for (int k = 0; k < splits.size(); k += 3) {
            int id = splits.get(k + 2);
            if (id >= 0) {
                out.add(id);
            } else {
                preTokenizeAndEncode(s.substring(splits.get(k), splits.get(k + 1)), out, pieces);
            }
        }
    }

    private void preTokenizeAndEncode(String s, IntList out, List<String> pieces) {
        pieces.clear();
        preTokenizer.split(s, pieces);
        for (String piece : pieces) {
            model.encode(piece, out);
        }
    }

    // ---------------------------------------------------------------- decoding

    /** The text of {@code ids}, special tokens included (HF {@code skip_special_tokens=False}). */
    public String decode(int[] ids) {
        return decode(ids, SpecialTokens.KEEP);
    }

    /**
     * The text of {@code ids}. With {@link SpecialTokens#SKIP}, special added tokens ({@code <bos>}, {@code <eos>},
     * {@code <pad>}, {@code <start_of_turn>}, {@code <end_of_turn>}, ...) are left out.
     *
     * @throws IllegalArgumentException for an id outside {@code [0, size())}
     */
    public String decode(int[] ids, SpecialTokens specialTokens) {
        boolean skipSpecial = specialTokens == SpecialTokens.SKIP;
        List<String> toks = new ArrayList<>(ids.length);
        for (int i = 0; i < ids.length; i++) {
            int id = ids[i];
            if (id < 0 || id >= tokens.length) {
                throw new IllegalArgumentException("decode: ids[" + i + "] = " + id + " is not a token id (0.."
                        + (tokens.length - 1) + ")");
            }
            if (skipSpecial && special[id]) {
                continue;
            }
            toks.add(tokens[id]);
        }
        if (decoder == null) {
            return String.join(" ", toks);
        }
        return String.join("", decoder.decodeChain(toks));
    }

    // ---------------------------------------------------------------- vocabulary

    /** The id of a token string (added tokens first, then the model vocabulary), or -1 if there is none. */
    public int tokenId(String token) {
        Integer added = addedByContent.get(token);
        if (added != null) {
            return added;
        }
        return modelIndex.get(token);
    }

    /** The token string of an id (for byte-fallback tokens, {@code <0xNN>}; spaces appear as '▁'). */
    public String token(int id) {
        if (id < 0 || id >= tokens.length) {
            throw new IllegalArgumentException("token id " + id + " out of range 0.." + (tokens.length - 1));
        }
        return tokens[id];
    }

    /**
     * The size of the model vocabulary (HF {@code tokenizer.vocab_size}): 262,144 for Gemma 3, the number of rows
     * of its embedding matrix.
     */
    public int vocabSize() {
        return modelVocabSize;
    }

    /**
     * The number of ids, added tokens included (HF {@code len(tokenizer)}): 262,145 for Gemma 3, whose
     * {@code <image_soft_token>} (262144) lies past the model vocabulary.
     */
    public int size() {
        return tokens.length;
    }

    /** Whether {@code id} is a special added token (dropped by {@code decode(ids, true)}). */
    public boolean isSpecial(int id) {
        return id >= 0 && id < special.length && special[id];
    }

    /** The file's added tokens, in file order. */
    public List<AddedToken> addedTokens() {
        return addedTokens;
    }

    public int bosId() {
        return bosId;
    }

    /** {@code <eos>} (1). Gemma 3 instruction-tuned models end a turn with {@link #endOfTurnId()} instead. */
    public int eosId() {
        return eosId;
    }

    public int padId() {
        return padId;
    }

    /** {@code <unk>} (3), or -1. Never produced by encoding: Gemma 3 falls back to byte tokens. */
    public int unkId() {
        return unkId;
    }

    public int startOfTurnId() {
        return startOfTurnId;
    }

    public int endOfTurnId() {
        return endOfTurnId;
    }

    /**
     * Empties the cache of encoded words (at most 200,000 entries, kept across calls and threads). Only useful to
     * measure encoding without it or to release its memory.
     */
    public void clearWordCache() {
        model.clearCache();
    }

    /** Where this tokenizer was loaded from. */
    public String source() {
        return source;
    }

    /** Internal: the BPE model, for tests. */
    BpeModel model() {
        return model;
    }

    @Override
    public String toString() {
        return "GemmaTokenizer[" + source + ": " + modelVocabSize + " model tokens, " + addedTokens.size()
                + " added, " + model.mergeCount() + " merges]";
    }
}
