package dev.jtune.gemma.model;

import dev.jtune.engine.Tensor;

/**
 * One decoder layer's weights, by role. Linear weights are [out, in] as HF stores them; the six norms are
 * Gemma's (1 + w) RMSNorms.
 */
public record Gemma3Layer(
        Tensor inputNorm,
        Tensor qProj,
        Tensor kProj,
        Tensor vProj,
        Tensor oProj,
        Tensor qNorm,
        Tensor kNorm,
        Tensor postAttentionNorm,
        Tensor preFeedforwardNorm,
        Tensor gateProj,
        Tensor upProj,
        Tensor downProj,
        Tensor postFeedforwardNorm) {

    /** HF's parameter names of layer {@code i}, in the order of this record's components. */
    static String[] names(int i) {
        String p = "model.layers." + i + ".";
        return new String[] {
                p + "input_layernorm.weight",
                p + "self_attn.q_proj.weight",
                p + "self_attn.k_proj.weight",
                p + "self_attn.v_proj.weight",
                p + "self_attn.o_proj.weight",
                p + "self_attn.q_norm.weight",
                p + "self_attn.k_norm.weight",
                p + "post_attention_layernorm.weight",
                p + "pre_feedforward_layernorm.weight",
                p + "mlp.gate_proj.weight",
                p + "mlp.up_proj.weight",
                p + "mlp.down_proj.weight",
                p + "post_feedforward_layernorm.weight"};
    }

    static Gemma3Layer of(Tensor[] t) {
        return new Gemma3Layer(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12]);
    }

    Tensor[] tensors() {
        return new Tensor[] {inputNorm, qProj, kProj, vProj, oProj, qNorm, kNorm, postAttentionNorm,
                preFeedforwardNorm, gateProj, upProj, downProj, postFeedforwardNorm};
    }
}
