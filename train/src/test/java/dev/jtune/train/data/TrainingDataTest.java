package dev.jtune.train.data;

import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.train.data.DataException.Reason;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

import static dev.jtune.train.data.TestData.jsonl;
import static dev.jtune.train.data.TestData.llava;
import static dev.jtune.train.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The eval split and the trainer-facing loading. */
class TrainingDataTest {
    static ChatTemplate template;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() {
        template = TestData.template();
    }

    static List<Integer> range(int n) {
        return IntStream.range(0, n).boxed().toList();
    }

    @Test
    void evalSplitIsDeterministicBySeed() {
        List<Integer> items = range(100);
        EvalSplit<Integer> a = EvalSplit.of(items, 0.1, 42);
        EvalSplit<Integer> b = EvalSplit.of(items, 0.1, 42);
        assertEquals(a, b);
        assertEquals(10, a.eval().size());
        assertEquals(90, a.train().size());
        // a partition of the items, each part in the original order
        List<Integer> all = new ArrayList<>(a.train());
        all.addAll(a.eval());
        assertEquals(items, all.stream().sorted().toList());
        assertEquals(a.eval().stream().sorted().toList(), a.eval());
        assertEquals(a.train().stream().sorted().toList(), a.train());
        // exactly the first ratio*n of the indices shuffled by java.util.Random(seed)
        List<Integer> shuffled = new ArrayList<>(items);
        java.util.Collections.shuffle(shuffled, new java.util.Random(42));
        assertEquals(shuffled.subList(0, 10).stream().sorted().toList(), a.eval());
        assertNotEquals(a.eval(), EvalSplit.of(items, 0.1, 43).eval());
    }

    @Test
    void evalSplitCounts() {
        assertEquals(0, EvalSplit.evalCount(100, 0));
        assertEquals(1, EvalSplit.evalCount(5, 0.01), "at least one when ratio > 0");
        assertEquals(3, EvalSplit.evalCount(10, 0.35));
        assertEquals(List.of(), EvalSplit.of(range(5), 0, 1).eval());
        assertEquals(1, EvalSplit.of(range(2), 0.5, 1).eval().size());
        assertThrows(IllegalArgumentException.class, () -> EvalSplit.of(range(1), 0.5, 1));
        assertThrows(IllegalArgumentException.class, () -> EvalSplit.of(range(10), 1.0, 1));
    }

    @Test
    void loadWithRatioAndWithEvalFile() {
        String[] records = IntStream.range(0, 40).mapToObj(i -> llava("q" + i, "a" + i)).toArray(String[]::new);
        Path train = write(dir, "train.jsonl", jsonl(records));
        Path eval = write(dir, "eval.jsonl", jsonl(llava("eq", "ea"), llava("eq2", "ea2")));
        DatasetBuilder builder = new DatasetBuilder(template, DataOptions.of(128));
        List<Example> all = builder.load(train).examples();

        TrainingData r = TrainingData.load(builder, train, null, 0.25, 7);
        assertEquals(30, r.train().size());
        assertEquals(10, r.eval().size());
        assertEquals(EvalSplit.of(all, 0.25, 7).eval(), r.eval());
        assertEquals(r, TrainingData.load(builder, train, null, 0.25, 7), "same seed, same split");
        assertTrue(r.summary().contains("--eval_ratio 0.25: 30 training + 10 eval examples"), r.summary());
        assertEquals(40, r.trainStats().examplesKept());

        TrainingData e = TrainingData.load(builder, train, eval, 0, 7);
        assertEquals(all, e.train());
        assertEquals(2, e.eval().size());
        assertEquals(2, e.evalStats().orElseThrow().examplesKept());

        TrainingData none = TrainingData.load(builder, train, null, 0, 7);
        assertEquals(all, none.train());
        assertEquals(List.of(), none.eval());
    }

    @Test
    void noUsableExampleIsAnError() {
        Path f = write(dir, "allbad.jsonl", jsonl(llava("<image>", "x"), "{\"a\": 1}"));
        DatasetBuilder builder = new DatasetBuilder(template, DataOptions.of(128).withSkipBadRecords(true));
        DataException e = assertThrows(DataException.class, () -> TrainingData.load(builder, f, null, 0, 1));
        assertEquals(Reason.FILE, e.reason());
        assertTrue(e.getMessage().contains("no usable training example"), e.getMessage());
        assertTrue(e.getMessage().contains("skipped 2 bad records"), e.getMessage());
    }
}
