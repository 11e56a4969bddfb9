package dev.jtune.gemma.tokenizer;

/**
 * An entry of tokenizer.json's "added_tokens": matched in the text before the model runs (HF's AddedVocabulary).
 *
 * @param singleWord only match where the token is not part of a larger word (no word character on either side)
 * @param lstrip     the match swallows the whitespace on its left
 * @param rstrip     the match swallows the whitespace on its right
 * @param normalized match against the normalized text (true) or the raw text (false)
 * @param special    a control token: {@code decode(ids, SpecialTokens.SKIP)} drops it
 */
public record AddedToken(int id, String content, boolean singleWord, boolean lstrip, boolean rstrip,
                         boolean normalized, boolean special) {
}
