/**
 * The Gemma 3 tokenizer and chat template, in plain Java, producing exactly HF tokenizers' ids.
 * <ul>
 * <li>{@link dev.jtune.gemma.tokenizer.GemmaTokenizer}: loads a HF {@code tokenizer.json} (plain or gzipped) and
 * runs its pipeline (added tokens, normalizer, pre-tokenizer, BPE with byte fallback, post-processor, decoder).
 * Checked against HF tokenizers 0.23 on the fixtures' hard strings, and against tokenizers.js on 40,000 random
 * strings and 1 MiB of mixed text.</li>
 * <li>{@link dev.jtune.gemma.tokenizer.ChatTemplate}: the official Gemma 3 chat template (system prompt folded into
 * the first user turn, user/model turns, generation prompt) and the training mask of a conversation: a model
 * turn's content and its {@code <end_of_turn>}.</li>
 * </ul>
 * Loading: Jackson's streaming parser; the merges are resolved on a second thread into an open-addressing table
 * keyed by {@code leftId << 32 | rightId}; the gzip stream is inflated on a third. Encoding: HF's rank-ordered merge
 * loop (binary heap for long words, linear scan for short ones) over words cut where no merge can cross, with a
 * concurrent word cache.
 */
package dev.jtune.gemma.tokenizer;
