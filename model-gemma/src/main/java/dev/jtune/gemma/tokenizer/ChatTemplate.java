package dev.jtune.gemma.tokenizer;

import dev.jtune.JtuneException;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The official Gemma 3 chat template (the Jinja {@code chat_template} of Gemma 3's tokenizer_config.json),
 * written directly in Java:
 * <pre>
 * &lt;bos&gt;&lt;start_of_turn&gt;user\n{system}\n\n{user}&lt;end_of_turn&gt;\n&lt;start_of_turn&gt;model\n{assistant}&lt;end_of_turn&gt;\n...
 * </pre>
 * <ul>
 * <li>an optional first {@code system} message is not a turn: its content (untrimmed) + "\n\n" is put in front of
 * the first turn's (trimmed) content;</li>
 * <li>after it, roles alternate {@code user}, {@code assistant}, {@code user}, ... ({@code assistant} renders as
 * {@code model}; {@code model} is accepted as a synonym). The Jinja template only checks that even turns are
 * {@code user} and odd ones are not; this class also rejects any odd role other than assistant/model and a
 * system message anywhere but first, with a {@link ChatFormatException} naming the message;</li>
 * <li>each content is trimmed of whitespace as Jinja's {@code trim} (Python {@code str.strip()});</li>
 * <li>with {@link GenerationPrompt#ADD}, {@code <start_of_turn>model\n} ends the text.</li>
 * </ul>
 * A list content (text and image parts) is given as one string by {@link #content}: images as {@link #BOI}, which
 * {@link #withImages} expands to the image's soft tokens as HF's Gemma3Processor does after the template.
 * <p>
 * <b>Training mask</b> ({@link #encode}): true for the tokens of each model turn's content and its
 * {@code <end_of_turn>}; false for {@code <bos>}, the {@code <start_of_turn>model\n} header, every user/system
 * token, and the "\n" after {@code <end_of_turn>}. The model is trained to produce what it will have to generate:
 * its answer and the token that ends it ({@code <end_of_turn>} is Gemma 3 IT's generation stop token, the
 * tokenizer_config's eos_token); the "\n" after it is template glue that generation never emits, as in TRL's
 * assistant-only / completion-only losses for Gemma.
 */
public final class ChatTemplate {
    /** Whether the text ends with the prompt for the model's turn ({@code <start_of_turn>model\n}), as for generation. */
    public enum GenerationPrompt { ADD, OMIT }

    private static final String BOS = "<bos>";
    private static final String START = "<start_of_turn>";
    private static final String END = "<end_of_turn>";

    /** A chat message: role {@code system}, {@code user}, {@code assistant} (or {@code model}); text content. */
    public record Message(String role, String content) {
        public Message {
            Objects.requireNonNull(role, "role");
            Objects.requireNonNull(content, "content");
        }

        public static Message system(String content) {
            return new Message("system", content);
        }

        public static Message user(String content) {
            return new Message("user", content);
        }

        public static Message assistant(String content) {
            return new Message("assistant", content);
        }
    }

    /**
     * A tokenized conversation.
     *
     * @param ids       the token ids, starting with {@code <bos>}
     * @param trainMask per id: true where a fine-tune computes the loss (model turns' content and their
     *                  {@code <end_of_turn>})
     */
    public record Rendered(int[] ids, boolean[] trainMask) {
        public Rendered {
            if (ids.length != trainMask.length) {
                throw new IllegalArgumentException("ids and mask lengths differ: " + ids.length + " vs " + trainMask.length);
            }
        }

        /** How many ids are trained on. */
        public int trainedCount() {
            int n = 0;
            for (boolean b : trainMask) {
                if (b) {
                    n++;
                }
            }
            return n;
        }
    }

    /** Thrown for a conversation the template does not accept (roles out of order, empty, ...). */
    public static final class ChatFormatException extends JtuneException {
        public ChatFormatException(String message) {
            super(message);
        }
    }

    /** An image's place in a content, as the template renders an image part. */
    public static final String BOI = "<start_of_image>";
    /** What follows an image's soft tokens. */
    public static final String EOI = "<end_of_image>";
    /** One image soft token: the positions image features replace. */
    public static final String IMAGE_TOKEN = "<image_soft_token>";

    private final GemmaTokenizer tokenizer;
    /** Soft tokens each {@link #BOI} expands to (Gemma3Processor's image_seq_length), or 0 to leave it as is. */
    private final int imageTokens;

    public ChatTemplate(GemmaTokenizer tokenizer) {
        this(tokenizer, 0);
    }

    private ChatTemplate(GemmaTokenizer tokenizer, int imageTokens) {
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
        this.imageTokens = imageTokens;
    }

    /**
     * This template followed by HF's Gemma3Processor: every {@link #BOI} of the rendered text (an image part) becomes
     * {@code "\n\n<start_of_image>"}, {@code tokensPerImage} x {@code <image_soft_token>}, {@code "<end_of_image>\n\n"}.
     */
    public ChatTemplate withImages(int tokensPerImage) {
        if (tokensPerImage <= 0) {
            throw new IllegalArgumentException("tokens per image must be positive, got " + tokensPerImage);
        }
        return new ChatTemplate(tokenizer, tokensPerImage);
    }

    /** {@code text} with every {@link #BOI} expanded to {@code tokensPerImage} soft tokens, as Gemma3Processor does. */
    public static String expandImages(String text, int tokensPerImage) {
        if (!text.contains(BOI)) {
            return text;
        }
        String full = "\n\n" + BOI + IMAGE_TOKEN.repeat(tokensPerImage) + EOI + "\n\n";
        return text.replace(BOI, full);
    }

    /** {@code text} with its images expanded when this template does ({@link #withImages}). */
    private String expanded(String text) {
        return imageTokens > 0 ? expandImages(text, imageTokens) : text;
    }

    /** How many images (each {@link #BOI}) {@code text} holds. */
    public static int countImages(String text) {
        int n = 0;
        for (int i = text.indexOf(BOI); i >= 0; i = text.indexOf(BOI, i + BOI.length())) {
            n++;
        }
        return n;
    }

    /**
     * A message's content from its parts as the Gemma 3 template renders a list content: each text part trimmed, each
     * image part {@link #BOI}, concatenated. {@code parts} holds the texts, null for an image.
     */
    public static String content(List<String> parts) {
        StringBuilder sb = new StringBuilder();
        for (String p : parts) {
            sb.append(p == null ? BOI : pythonStrip(p));
        }
        return sb.toString();
    }

    /** The rendered text, exactly as HF's {@code apply_chat_template(messages, tokenize=False, ...)}. */
    public String render(List<Message> messages, GenerationPrompt prompt) {
        return renderWithSpans(messages, prompt == GenerationPrompt.ADD, null);
    }

    /** Renders, tokenizes and builds the training mask (see the class comment). */
    public Rendered encode(List<Message> messages, GenerationPrompt prompt) {
        List<int[]> trained = new ArrayList<>();
        String text = renderWithSpans(messages, prompt == GenerationPrompt.ADD, trained);
        IntList ids = new IntList(text.length() / 3 + 16);
        IntList spans = new IntList(text.length() / 2 + 32);
        tokenizer.encodeInto(text, ids, spans); // the text starts with "<bos>": no second one is added
        boolean[] mask = new boolean[ids.size()];
        int s = 0;
        for (int i = 0; i < mask.length; i++) {
            int start = spans.get(2 * i);
            int end = spans.get(2 * i + 1);
            while (s < trained.size() && trained.get(s)[1] <= start) {
                s++;
            }
            if (s < trained.size()) {
                int[] span = trained.get(s);
                boolean inside = start >= span[0] && end <= span[1];
                boolean overlaps = start < span[1] && end > span[0];
                if (overlaps && !inside) {
                    // cannot happen with Gemma 3: every boundary of a trained span is next to an added token
                    throw new IllegalStateException("token " + i + " (" + tokenizer.token(ids.get(i)) + ") straddles "
                            + "the boundary of a model turn at chars [" + span[0] + ", " + span[1] + ")");
                }
                mask[i] = inside;
            }
        }
        return new Rendered(ids.toArray(), mask);
    }

    /**
     * Tokenizes already rendered chat text: special markers are recognised, and {@code <bos>} is added only if the
     * text does not already start with it.
     */
    public int[] tokenizeRendered(String text) {
        return tokenizer.encode(text, text.startsWith(BOS) ? GemmaTokenizer.Bos.OMIT : GemmaTokenizer.Bos.ADD);
    }

    private String renderWithSpans(List<Message> messages, boolean addGenerationPrompt, List<int[]> trained) {
        Objects.requireNonNull(messages, "messages");
        if (messages.isEmpty()) {
            throw new ChatFormatException("empty conversation: the Gemma 3 template needs at least one message");
        }
        for (int i = 0; i < messages.size(); i++) {
            if (messages.get(i) == null) {
                throw new ChatFormatException("message " + i + " is null");
            }
        }
        StringBuilder sb = new StringBuilder(256);
        sb.append(BOS);
        String firstUserPrefix = "";
        int first = 0;
        if (messages.get(0).role().equals("system")) {
            firstUserPrefix = messages.get(0).content() + "\n\n";
            first = 1;
        }
        for (int i = first; i < messages.size(); i++) {
            Message m = messages.get(i);
            int turn = i - first;
            boolean userTurn = turn % 2 == 0;
            String role = m.role();
            if (userTurn && !role.equals("user")) {
                throw new ChatFormatException(alternationMessage(messages, i, first, "user"));
            }
            if (!userTurn && !role.equals("assistant") && !role.equals("model")) {
                throw new ChatFormatException(alternationMessage(messages, i, first, "assistant"));
            }
            boolean modelTurn = !userTurn;
            sb.append(START).append(modelTurn ? "model" : "user").append('\n');
            if (turn == 0) {
                sb.append(expanded(firstUserPrefix));
            }
            int contentStart = sb.length();
            sb.append(expanded(pythonStrip(m.content())));
            sb.append(END);
            if (modelTurn && trained != null) {
                trained.add(new int[] {contentStart, sb.length()});
            }
            sb.append('\n');
        }
        if (addGenerationPrompt) {
            sb.append(START).append("model\n");
        }
        return sb.toString();
    }

    private static String alternationMessage(List<Message> messages, int i, int first, String expected) {
        String previous = i > first ? "message " + (i - 1) + " has role '" + messages.get(i - 1).role() + "'"
                : first == 1 ? "it follows the system message" : "it is the first message";
        String hint = messages.get(i).role().equals("system")
                ? " (a system message is only allowed as message 0)" : "";
        return "message " + i + " has role '" + messages.get(i).role() + "' but '" + expected + "' was expected: "
                + previous + "; after an optional system message, roles must alternate user/assistant/user/..." + hint;
    }

    /**
     * Python's {@code str.strip()} with no argument (Jinja's {@code trim}, which the template applies to every message):
     * strips characters for which isspace(). What a message is after the template; the data reader tells empty ones by it.
     */
    public static String pythonStrip(String s) {
        int start = 0;
        int end = s.length();
        while (start < end) {
            int cp = s.codePointAt(start);
            if (!isPythonSpace(cp)) {
                break;
            }
            start += Character.charCount(cp);
        }
        while (end > start) {
            int cp = s.codePointBefore(end);
            if (!isPythonSpace(cp)) {
                break;
            }
            end -= Character.charCount(cp);
        }
        return s.substring(start, end);
    }

    /** Python {@code str.isspace()} for one character: bidi class WS, B or S, or category Zs. */
    static boolean isPythonSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0
                || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029
                || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    }
}
