package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;
import org.sparkrlhf.gpuexec.parallel.Sharding;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parameter table of a decoder, by Hugging Face names, in the order transformers lists them,
 * plus per-layer records for the layer loop. The same class holds the gradients (a second table
 * of the same shapes). A shard's table ({@link ShardSpec}) holds only its parameters, in its shapes, and
 * {@link #layers} are its own layers (index 0 is the stage's first). With tied embeddings {@code lm_head.weight} is not in the table and
 * {@link #lmHead} is the embedding tensor, so its gradient sums both uses.
 */
public final class LlamaWeights {
    /** A parameter's name and shape. */
    public record Spec(String name, int[] shape) {
        /** AdamW's default: no weight decay on 1-D tensors (norm weights, biases). */
        public boolean decays() {
            return shape.length >= 2;
        }
    }

    /** The parameters of one decoder layer; biases are null when the config has none. */
    public record Layer(Tensor inputNorm, Tensor q, Tensor qBias, Tensor k, Tensor kBias, Tensor v, Tensor vBias,
                        Tensor o, Tensor oBias, Tensor postNorm, Tensor gate, Tensor gateBias,
                        Tensor up, Tensor upBias, Tensor down, Tensor downBias) {
    }

    private final Map<String, Tensor> byName;
    private final List<Spec> specs;
    public final Tensor embed;
    public final Layer[] layers;
    public final Tensor finalNorm;
    /** The LM head weight [V, C] (the embedding when tied), or null for a score model. */
    public final Tensor lmHead;
    /** The score head [1, C] of a reward model or critic, or null for a causal LM. */
    public final Tensor score;

    private LlamaWeights(List<Spec> specs, Map<String, Tensor> byName, ModelConfig c, ShardSpec shard) {
        this.specs = specs;
        this.byName = Collections.unmodifiableMap(byName);
        this.embed = byName.get("model.embed_tokens.weight");
        this.finalNorm = byName.get("model.norm.weight");
        int first = shard.firstLayer(c.numLayers());
        this.layers = new Layer[shard.endLayer(c.numLayers()) - first];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + (first + i) + ".";
            layers[i] = new Layer(byName.get(p + "input_layernorm.weight"),
                    byName.get(p + "self_attn.q_proj.weight"), byName.get(p + "self_attn.q_proj.bias"),
                    byName.get(p + "self_attn.k_proj.weight"), byName.get(p + "self_attn.k_proj.bias"),
                    byName.get(p + "self_attn.v_proj.weight"), byName.get(p + "self_attn.v_proj.bias"),
                    byName.get(p + "self_attn.o_proj.weight"), byName.get(p + "self_attn.o_proj.bias"),
                    byName.get(p + "post_attention_layernorm.weight"),
                    byName.get(p + "mlp.gate_proj.weight"), byName.get(p + "mlp.gate_proj.bias"),
                    byName.get(p + "mlp.up_proj.weight"), byName.get(p + "mlp.up_proj.bias"),
                    byName.get(p + "mlp.down_proj.weight"), byName.get(p + "mlp.down_proj.bias"));
        }
        this.lmHead = c.head() != ModelConfig.Head.CAUSAL_LM || !shard.lastStage() ? null
                : c.tieWordEmbeddings() ? embed : byName.get("lm_head.weight");
        this.score = byName.get("score.weight");
    }

    /** The parameters a config has, in Hugging Face's order. */
    public static List<Spec> specs(ModelConfig c) {
        List<Spec> s = new ArrayList<>();
        int C = c.hiddenSize(), I = c.intermediateSize(), Q = c.qDim(), KV = c.kvDim();
        s.add(new Spec("model.embed_tokens.weight", new int[]{c.vocabSize(), C}));
        for (int i = 0; i < c.numLayers(); i++) {
            String p = "model.layers." + i + ".";
            s.add(new Spec(p + "self_attn.q_proj.weight", new int[]{Q, C}));
            if (c.qkvBias()) s.add(new Spec(p + "self_attn.q_proj.bias", new int[]{Q}));
            s.add(new Spec(p + "self_attn.k_proj.weight", new int[]{KV, C}));
            if (c.qkvBias()) s.add(new Spec(p + "self_attn.k_proj.bias", new int[]{KV}));
            s.add(new Spec(p + "self_attn.v_proj.weight", new int[]{KV, C}));
            if (c.qkvBias()) s.add(new Spec(p + "self_attn.v_proj.bias", new int[]{KV}));
            s.add(new Spec(p + "self_attn.o_proj.weight", new int[]{C, Q}));
            if (c.oBias()) s.add(new Spec(p + "self_attn.o_proj.bias", new int[]{C}));
            s.add(new Spec(p + "mlp.gate_proj.weight", new int[]{I, C}));
            if (c.mlpBias()) s.add(new Spec(p + "mlp.gate_proj.bias", new int[]{I}));
            s.add(new Spec(p + "mlp.up_proj.weight", new int[]{I, C}));
            if (c.mlpBias()) s.add(new Spec(p + "mlp.up_proj.bias", new int[]{I}));
            s.add(new Spec(p + "mlp.down_proj.weight", new int[]{C, I}));
            if (c.mlpBias()) s.add(new Spec(p + "mlp.down_proj.bias", new int[]{C}));
            s.add(new Spec(p + "input_layernorm.weight", new int[]{C}));
            s.add(new Spec(p + "post_attention_layernorm.weight", new int[]{C}));
        }
        s.add(new Spec("model.norm.weight", new int[]{C}));
        if (c.head() == ModelConfig.Head.CAUSAL_LM) {
            if (!c.tieWordEmbeddings()) s.add(new Spec("lm_head.weight", new int[]{c.vocabSize(), C}));
        } else {
            s.add(new Spec("score.weight", new int[]{1, C}));
        }
        return Collections.unmodifiableList(s);
    }

    /** A zero-filled table for config c. */
    public static LlamaWeights allocate(Backend backend, ModelConfig c, DType dtype) {
        return allocate(backend, c, ShardSpec.WHOLE, dtype);
    }

    /** A zero-filled table of the parameters one shard holds, in their shard shapes ({@link Sharding#specs}). */
    public static LlamaWeights allocate(Backend backend, ModelConfig c, ShardSpec shard, DType dtype) {
        List<Spec> specs = Sharding.specs(c, shard);
        Map<String, Tensor> byName = new LinkedHashMap<>();
        for (Spec s : specs) byName.put(s.name(), backend.allocate(dtype, s.shape()));
        return new LlamaWeights(specs, byName, c, shard);
    }

    public List<Spec> specs() {
        return specs;
    }

    /** Parameters by Hugging Face name (lm_head.weight absent when tied). */
    public Map<String, Tensor> byName() {
        return byName;
    }

    public Tensor get(String name) {
        Tensor t = byName.get(name);
        if (t == null) throw new IllegalArgumentException("no parameter '" + name + "'");
        return t;
    }

    public long count() {
        long n = 0;
        for (Tensor t : byName.values()) n += t.numel();
        return n;
    }

    public void zero(Backend backend) {
        for (Tensor t : byName.values()) backend.zero(t);
    }

    public void free(Backend backend) {
        for (Tensor t : byName.values()) backend.free(t);
    }
}
