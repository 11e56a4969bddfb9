package dev.jtune.bench;

import dev.jtune.gemma.tokenizer.GemmaTokenizer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * The Gemma 3 tokenizer: load time of the real tokenizer.json (262,144-token BPE, 514,906 merges, gzipped) and
 * encode throughput on 1 MiB of mixed text.
 * <ul>
 * <li>{@code load}: average load time in a warmed-up JVM (ms);</li>
 * <li>{@code loadCold}: the first load in a fresh JVM (single shot per fork, ms): what a training run pays;</li>
 * <li>{@code encode} / {@code encodeNoWordCache}: throughput in bytes/µs, which is MB/s (10^6 bytes), on one
 * thread, with the word cache warm, or emptied before every invocation.</li>
 * </ul>
 * The text is {@value #TEXT_BYTES} UTF-8 bytes, generated deterministically: prose of Zipf-distributed words taken
 * from the vocabulary (so many distinct words), code, JSON, HTML, Chinese/Japanese/Korean without spaces,
 * numbers and emoji (ZWJ sequences, flags).
 * <p>
 * The tokenizer file: system property {@code jtune.tokenizer}, else
 * {@code model-gemma/src/main/resources/dev/jtune/gemma/tokenizer/gemma3-tokenizer.json.gz} under the working directory or its
 * parent (run from the repository root: {@code java -jar bench/target/benchmarks.jar TokenizerBenchmark}).
 */
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
public class TokenizerBenchmark {
    static final int TEXT_BYTES = 1 << 20;
    static final String DEFAULT = "model-gemma/src/main/resources/dev/jtune/gemma/tokenizer/gemma3-tokenizer.json.gz";

    /** Only the file: the load benchmarks start from nothing loaded (loadCold's fork has loaded nothing at all). */
    @State(org.openjdk.jmh.annotations.Scope.Benchmark)
    public static class TokenizerFile {
        Path file;

        @Setup(Level.Trial)
        public void setUp() {
            file = tokenizerFile();
        }
    }

    /** A loaded tokenizer and the text. */
    @State(org.openjdk.jmh.annotations.Scope.Benchmark)
    public static class Loaded {
        GemmaTokenizer tokenizer;
        String text;

        @Setup(Level.Trial)
        public void setUp() {
            tokenizer = GemmaTokenizer.load(tokenizerFile());
            text = mixedText(tokenizer, TEXT_BYTES, 42);
            int[] ids = tokenizer.encode(text);
            if (!tokenizer.decode(ids).equals(text)) {
                throw new IllegalStateException("the benchmark text does not round-trip");
            }
            System.out.printf("%n%s; text: %d chars, %d UTF-8 bytes, %d tokens%n", tokenizer, text.length(),
                    text.getBytes(StandardCharsets.UTF_8).length, ids.length);
        }
    }

    static Path tokenizerFile() {
        String prop = System.getProperty("jtune.tokenizer");
        if (prop != null) {
            return Path.of(prop);
        }
        for (Path candidate : new Path[] {Path.of(DEFAULT), Path.of("..").resolve(DEFAULT)}) {
            if (Files.exists(candidate)) {
                return candidate;
            }
        }
        throw new IllegalStateException("Gemma 3 tokenizer.json not found: set -Djtune.tokenizer=/path/to/tokenizer.json[.gz] "
                + "(looked for " + DEFAULT + " under " + Path.of("").toAbsolutePath() + " and its parent)");
    }

    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 3, time = 3)
    @Measurement(iterations = 5, time = 3)
    public GemmaTokenizer load(TokenizerFile f) {
        return GemmaTokenizer.load(f.file);
    }

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 0)
    @Measurement(iterations = 1)
    @Fork(value = 5, jvmArgsAppend = {"-Xmx4g"})
    public GemmaTokenizer loadCold(TokenizerFile f) {
        return GemmaTokenizer.load(f.file);
    }

    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @OperationsPerInvocation(TEXT_BYTES)
    @Warmup(iterations = 3, time = 2)
    @Measurement(iterations = 5, time = 2)
    public int[] encode(Loaded l) {
        return l.tokenizer.encode(l.text);
    }

    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @OperationsPerInvocation(TEXT_BYTES)
    @Warmup(iterations = 3, time = 2)
    @Measurement(iterations = 5, time = 2)
    public int[] encodeNoWordCache(Loaded l) {
        l.tokenizer.clearWordCache();
        return l.tokenizer.encode(l.text);
    }

    /** Exactly {@code bytes} UTF-8 bytes of mixed text (see the class comment), from {@code seed}. */
    static String mixedText(GemmaTokenizer t, int bytes, long seed) {
        Random r = new Random(seed);
        List<String> words = new ArrayList<>();
        for (int id = 0; id < t.vocabSize(); id++) {
            String s = t.token(id);
            if (s.length() > 1 && s.charAt(0) == '\u2581' && s.indexOf('\u2581', 1) < 0
                    && s.codePoints().skip(1).allMatch(Character::isLetter)) {
                words.add(s.substring(1));
            }
        }
        Collections.shuffle(words, r);
        String[] code = {
                "def f(x):\n    return x**2  # square\n",
                "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
                "{\"key\": [1, 2, 3], \"value\": null, \"nested\": {\"k\": \"v\"}}\n",
                "<div class=\"note\"><b>bold</b> and <i>italic</i></div>\n",
                "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;\n"};
        String[] cjk = {"日本語のテキストと中文文本，还有한국어。", "机器学习模型的微调需要大量的计算资源。",
                "東京は日本の首都です。", "대규모 언어 모델을 미세 조정합니다."};
        String[] emoji = {"👩‍👩‍👧‍👦", "🇫🇷", "✨🎉", "😀", "👍🏽"};
        StringBuilder sb = new StringBuilder(bytes);
        int utf8 = 0;
        while (true) {
            int kind = r.nextInt(20);
            String piece;
            if (kind < 15) {
                StringBuilder s = new StringBuilder();
                int n = 5 + r.nextInt(25);
                for (int k = 0; k < n; k++) {
                    // Zipf-like: index = size^u - 1
                    int idx = (int) Math.min(words.size() - 1, Math.floor(Math.pow(words.size(), r.nextDouble())) - 1);
                    String w = words.get(idx);
                    if (k == 0) {
                        w = w.substring(0, 1).toUpperCase() + w.substring(1);
                    }
                    s.append(w).append(k == n - 1 ? ". " : r.nextInt(12) == 0 ? ", " : " ");
                }
                if (r.nextInt(5) == 0) {
                    s.append("\n\n");
                }
                piece = s.toString();
            } else if (kind < 17) {
                piece = code[r.nextInt(code.length)];
            } else if (kind < 19) {
                piece = cjk[r.nextInt(cjk.length)] + (r.nextBoolean() ? " " : "");
            } else {
                piece = r.nextInt(100000) + " " + emoji[r.nextInt(emoji.length)] + " " + r.nextDouble() * 1000 + "\n";
            }
            int len = piece.getBytes(StandardCharsets.UTF_8).length;
            if (utf8 + len > bytes) {
                break;
            }
            sb.append(piece);
            utf8 += len;
        }
        sb.append("x".repeat(bytes - utf8)); // pad with ASCII to exactly `bytes`
        return sb.toString();
    }
}
