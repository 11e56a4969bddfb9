package dev.jtune.train;

import dev.jtune.gemma.config.Gemma3Config;

/**
 * The embedded default's model: Gemma 3's architecture at a small size (4 layers with the 5:1 sliding/global
 * pattern shortened to sliding, sliding, sliding, global; 4 query heads and 1 KV head as in 270M), from the
 * shipped gemma-3-270m configuration with its sizes scaled down.
 */
final class DefaultModel {
    private DefaultModel() {
    }

    static Gemma3Config config(int vocab, boolean gpu) {
        Gemma3Config real = Gemma3Config.builtIn("gemma-3-270m");
        int hidden = gpu ? 256 : 64;
        int headDim = gpu ? 64 : 32;
        String json = real.toHfJson()
                .replaceAll("\"vocab_size\" : \\d+", "\"vocab_size\" : " + vocab)
                .replaceAll("\"hidden_size\" : \\d+", "\"hidden_size\" : " + hidden)
                .replaceAll("\"intermediate_size\" : \\d+", "\"intermediate_size\" : " + hidden * 4)
                .replaceAll("\"head_dim\" : \\d+", "\"head_dim\" : " + headDim)
                .replaceAll("\"query_pre_attn_scalar\" : \\d+", "\"query_pre_attn_scalar\" : " + headDim)
                .replaceAll("\"num_hidden_layers\" : \\d+", "\"num_hidden_layers\" : 4")
                .replaceAll("\"sliding_window\" : \\d+", "\"sliding_window\" : 64")
                .replaceAll("(?s)\"layer_types\" : \\[[^]]*]", "\"layer_types\" : [\"sliding_attention\", \"sliding_attention\", \"sliding_attention\", \"full_attention\"]");
        return Gemma3Config.parse(json, "jtune's embedded default (gemma-3-270m scaled down)");
    }
}
