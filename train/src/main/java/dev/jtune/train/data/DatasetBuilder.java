package dev.jtune.train.data;

import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.ChatTemplate.ChatFormatException;
import dev.jtune.gemma.tokenizer.ChatTemplate.GenerationPrompt;
import dev.jtune.gemma.tokenizer.ChatTemplate.Message;
import dev.jtune.gemma.tokenizer.ChatTemplate.Rendered;
import dev.jtune.train.data.DataException.Reason;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Turns a dataset file into {@link Example}s with the Gemma 3 chat template:
 * <ul>
 * <li>ids: the rendered conversation, tokenized (starting with {@code <bos>}); labels: the id where
 * {@link ChatTemplate#encode}'s train mask is true (each model turn's content and its {@code <end_of_turn>}),
 * {@link Example#IGNORE} elsewhere;</li>
 * <li>an example longer than {@link DataOptions#maxSeqLength()} loses its tail, counted in {@link DataStats}
 * (examples truncated, tokens and trained tokens cut); one whose trained tokens all lie beyond the limit is dropped,
 * counted too;</li>
 * <li>a bad record throws {@link DataException} (file, record index, line, reason), or with
 * {@link DataOptions#skipBadRecords()} is skipped and counted by reason;</li>
 * <li>with {@link DataOptions#lazyPreprocess()}, a reader thread parses the file and hands records to
 * {@link DataOptions#numWorkers()} tokenizing threads through a bounded queue of futures, which the calling thread
 * drains in record order: the examples, the stats and the first error thrown are exactly those of the eager path,
 * which does everything on the calling thread.</li>
 * </ul>
 * Thread-safe (the template and tokenizer are).
 */
public final class DatasetBuilder {
    /** The conversation dataset bundled for the embedded default run (JSON lines, LLaVA and messages forms). */
    public static final String BUNDLED_RESOURCE = "/dev/jtune/train/data/default-conversations.jsonl";

    /** A loaded file: its examples in record order, and what loading did. */
    public record Dataset(List<Example> examples, DataStats stats) {
        public Dataset {
            examples = Collections.unmodifiableList(new ArrayList<>(examples));
        }
    }

    /** What became of one record. */
    sealed interface Outcome permits Kept, Dropped, Bad, End {
    }

    /** An example, and how much truncation cut from it. */
    record Kept(Example example, int rawLength, int cut, int trainedCut) implements Outcome {
    }

    /** Every trained token lay at or beyond the limit. */
    record Dropped(Conversation conversation, int length, int trained, int firstTrained) implements Outcome {
    }

    record Bad(DataException error) implements Outcome {
    }

    private final ChatTemplate template;
    private final DataOptions options;

    public DatasetBuilder(ChatTemplate template, DataOptions options) {
        Objects.requireNonNull(template, "template");
        this.options = Objects.requireNonNull(options, "options");
        // an image-text model: each image's <start_of_image> expands to its soft tokens, as Gemma3Processor does
        this.template = options.images() == null ? template : template.withImages(options.images().tokensPerImage());
    }

    public DataOptions options() {
        return options;
    }

    /** Loads a dataset file (JSON array or JSON lines). */
    public Dataset load(Path file) {
        try (ConversationReader reader = ConversationReader.open(file)) {
            return load(reader);
        } catch (IOException e) {
            throw DataException.file(file.toString(), "cannot close: " + e, e);
        }
    }

    /** Loads the bundled {@value #BUNDLED_RESOURCE}. */
    public Dataset loadBundled() {
        return load(openBundled());
    }

    /** Opens the bundled {@value #BUNDLED_RESOURCE}. */
    public static ConversationReader openBundled() {
        InputStream in = DatasetBuilder.class.getResourceAsStream(BUNDLED_RESOURCE);
        return ConversationReader.open(in, "bundled " + BUNDLED_RESOURCE.substring(BUNDLED_RESOURCE.lastIndexOf('/') + 1));
    }

    /** Reads every record of {@code reader} (closing it) into examples, eagerly or lazily per the options. */
    public Dataset load(ConversationReader reader) {
        reader.images(options.images() == null ? ConversationReader.Images.REFUSED : ConversationReader.Images.ACCEPTED);
        try (reader) {
            DataStats.Builder stats = new DataStats.Builder(reader.source(), options.maxSeqLength());
            List<Example> examples = new ArrayList<>();
            if (options.lazyPreprocess()) {
                loadLazily(reader, stats, examples);
            } else {
                ConversationReader.Result r;
                while ((r = reader.next()) != null) {
                    accept(process(r), stats, examples);
                }
            }
            return new Dataset(examples, stats.build());
        } catch (IOException e) {
            throw DataException.file(reader.source(), "cannot close: " + e, e);
        }
    }

    /** One conversation as an example: labels from the template's train mask; no length limit. */
    public Example toExample(List<Message> messages) {
        Rendered r = template.encode(messages, GenerationPrompt.OMIT);
        return new Example(r.ids(), labels(r));
    }

    /** Applies the template and the length limit to one record. */
    Outcome process(ConversationReader.Result result) {
        return switch (result) {
            case ConversationReader.Result.Bad b -> new Bad(b.error());
            case ConversationReader.Result.Ok ok -> encode(ok.conversation());
        };
    }

    /** Applies the template and the length limit to one conversation. */
    Outcome encode(Conversation c) {
        Rendered r;
        try {
            r = template.encode(c.messages(), GenerationPrompt.OMIT);
        } catch (ChatFormatException e) {
            String note = c.llava() ? " (in LLaVA terms: message i is conversations[i]; user = human, assistant = gpt)" : "";
            return new Bad(c.error(Reason.ROLES_NOT_ALTERNATING, e.getMessage() + note, e));
        }
        int[] ids = r.ids();
        int[] labels = labels(r);
        List<java.nio.file.Path> files = new ArrayList<>();
        for (String name : c.images()) {
            java.nio.file.Path p = java.nio.file.Path.of(name);
            java.nio.file.Path file = p.isAbsolute() ? p : options.images().folder().resolve(p);
            if (!java.nio.file.Files.isRegularFile(file)) {
                return new Bad(c.error(Reason.IMAGE_FILE, "image \"" + name + "\" is not a file: " + file.toAbsolutePath()
                        + (p.isAbsolute() ? "" : " (names resolve under --image_folder " + options.images().folder() + ")"), null));
            }
            files.add(file);
        }
        int max = options.maxSeqLength();
        if (ids.length <= max) {
            return new Kept(new Example(ids, labels, files), ids.length, 0, 0);
        }
        // never cut through an image: stop before the <start_of_image> of the first image that would not fit whole
        int keep = max;
        int whole = 0;
        if (!files.isEmpty()) {
            int boi = options.images().boiToken();
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] == boi) {
                    if (i + options.images().tokensPerImage() + 1 >= max) { // its soft tokens and <end_of_image> past the limit
                        keep = i;
                        break;
                    }
                    whole++;
                }
            }
            max = keep;
        }
        int trainedKept = 0;
        int trainedCut = 0;
        int firstTrained = -1;
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] != Example.IGNORE) {
                if (firstTrained < 0) {
                    firstTrained = i;
                }
                if (i < max) {
                    trainedKept++;
                } else {
                    trainedCut++;
                }
            }
        }
        if (trainedKept == 0) {
            return new Dropped(c, ids.length, trainedCut, firstTrained);
        }
        Example e = new Example(Arrays.copyOf(ids, max), Arrays.copyOf(labels, max), files.subList(0, whole));
        return new Kept(e, ids.length, ids.length - max, trainedCut);
    }

    private static int[] labels(Rendered r) {
        int[] ids = r.ids();
        boolean[] mask = r.trainMask();
        int[] labels = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            labels[i] = mask[i] ? ids[i] : Example.IGNORE;
        }
        return labels;
    }

    private void accept(Outcome o, DataStats.Builder stats, List<Example> examples) {
        switch (o) {
            case Kept k -> {
                examples.add(k.example());
                stats.kept(k.example(), k.rawLength(), k.cut(), k.trainedCut());
            }
            case Dropped d -> stats.dropped(d.conversation(), d.length(), d.trained(), d.firstTrained());
            case Bad b -> {
                if (!options.skipBadRecords()) {
                    throw b.error().withHint("--skip_bad_records skips such records and counts them");
                }
                stats.skipped(b.error());
            }
            case End e -> throw new IllegalStateException("end of data handled by the caller");
        }
    }

    // ---- lazy preprocessing ------------------------------------------------------------------------------------

    /** The reader thread's last item: the end of the file, or what stopped it. */
    private record End(RuntimeException error) implements Outcome {
    }

    private void loadLazily(ConversationReader reader, DataStats.Builder stats, List<Example> examples) {
        int workers = options.numWorkers();
        BlockingQueue<Future<? extends Outcome>> queue = new ArrayBlockingQueue<>(4 * workers);
        ExecutorService pool = Executors.newFixedThreadPool(workers,
                Thread.ofPlatform().daemon().name("jtune-tokenize-", 0).factory());
        Thread producer = Thread.ofPlatform().daemon().name("jtune-data-reader").unstarted(() -> {
            RuntimeException failure = null;
            try {
                ConversationReader.Result r;
                while ((r = reader.next()) != null) {
                    Future<? extends Outcome> f = switch (r) {
                        case ConversationReader.Result.Bad b -> CompletableFuture.completedFuture(new Bad(b.error()));
                        case ConversationReader.Result.Ok ok -> pool.submit(() -> encode(ok.conversation()));
                    };
                    queue.put(f);
                }
            } catch (InterruptedException e) {
                return; // the consumer stopped
            } catch (RuntimeException e) {
                failure = e;
            }
            try {
                queue.put(CompletableFuture.completedFuture(new End(failure)));
            } catch (InterruptedException e) {
                // the consumer stopped
            }
        });
        producer.start();
        try {
            while (true) {
                Outcome o = await(queue.take());
                if (o instanceof End end) {
                    if (end.error() != null) {
                        throw end.error();
                    }
                    break;
                }
                accept(o, stats, examples);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while loading " + reader.source(), e);
        } finally {
            producer.interrupt();
            pool.shutdownNow();
            boolean interrupted = false;
            while (producer.isAlive()) {
                try {
                    producer.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static Outcome await(Future<? extends Outcome> f) throws InterruptedException {
        try {
            return f.get();
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            if (cause instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(cause);
        }
    }
}
