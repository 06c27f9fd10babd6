package org.sparkrlhf.planner.realloc;

import org.sparkrlhf.planner.spec.ModelSpec;

import java.util.ArrayList;
import java.util.List;

/** The parameters of a LLaMA-family model with their Hugging Face names, shapes and tensor-parallel splits. */
public final class ModelParameters {
    private ModelParameters() {
    }

    /** The parameters of decoder layer {@code i}. */
    public static List<Param> layer(ModelSpec m, int i) {
        String p = "model.layers." + i + ".";
        long h = m.hidden();
        List<Param> r = new ArrayList<>();
        r.add(new Param(p + "input_layernorm.weight", i, h, 1, Split.REPLICATED));
        r.add(new Param(p + "self_attn.q_proj.weight", i, m.qDim(), h, Split.ROWS));
        r.add(new Param(p + "self_attn.k_proj.weight", i, m.kvDim(), h, Split.ROWS));
        r.add(new Param(p + "self_attn.v_proj.weight", i, m.kvDim(), h, Split.ROWS));
        if (m.attentionBias()) {
            r.add(new Param(p + "self_attn.q_proj.bias", i, m.qDim(), 1, Split.ROWS));
            r.add(new Param(p + "self_attn.k_proj.bias", i, m.kvDim(), 1, Split.ROWS));
            r.add(new Param(p + "self_attn.v_proj.bias", i, m.kvDim(), 1, Split.ROWS));
        }
        r.add(new Param(p + "self_attn.o_proj.weight", i, h, m.qDim(), Split.COLUMNS));
        r.add(new Param(p + "post_attention_layernorm.weight", i, h, 1, Split.REPLICATED));
        r.add(new Param(p + "mlp.gate_proj.weight", i, m.intermediate(), h, Split.ROWS));
        r.add(new Param(p + "mlp.up_proj.weight", i, m.intermediate(), h, Split.ROWS));
        r.add(new Param(p + "mlp.down_proj.weight", i, h, m.intermediate(), Split.COLUMNS));
        return r;
    }

    public static Param embedding(ModelSpec m) {
        return new Param("model.embed_tokens.weight", Param.EMBEDDING, m.vocab(), m.hidden(), Split.VOCAB_ROWS);
    }

    /** The final norm and the output head (none when tied to the embedding). */
    public static List<Param> last(ModelSpec m) {
        List<Param> r = new ArrayList<>();
        r.add(new Param("model.norm.weight", Param.FINAL, m.hidden(), 1, Split.REPLICATED));
        if (m.valueHead()) {
            r.add(new Param("score.weight", Param.FINAL, 1, m.hidden(), Split.REPLICATED));
        } else if (!m.tieEmbeddings()) {
            r.add(new Param("lm_head.weight", Param.FINAL, m.vocab(), m.hidden(), Split.VOCAB_ROWS));
        }
        return r;
    }

    /** All parameters, embedding first, then the layers in order, then the final norm and head. */
    public static List<Param> all(ModelSpec m) {
        List<Param> r = new ArrayList<>();
        r.add(embedding(m));
        for (int i = 0; i < m.layers(); i++) {
            r.addAll(layer(m, i));
        }
        r.addAll(last(m));
        return r;
    }
}
