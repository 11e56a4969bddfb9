package dev.jtune.gemma.tokenizer;

/** Loads the real Gemma 3 tokenizer once per JVM for the test classes, and prints how long it took. */
final class Tokenizers {
    private static GemmaTokenizer gemma3;

    private Tokenizers() {
    }

    static synchronized GemmaTokenizer gemma3() {
        if (gemma3 == null) {
            long t0 = System.nanoTime();
            gemma3 = GemmaTokenizer.bundled();
            System.out.printf("loaded %s in %.0f ms (first load in this JVM, cold JIT)%n", gemma3,
                    (System.nanoTime() - t0) / 1e6);
        }
        return gemma3;
    }
}
