package org.sparkrlhf.bench;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.core.Linear;
import ai.djl.training.GradientCollector;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * The same LLaMA on PyTorch's CPU engine through DJL: NDArray ops for the forward, autograd for
 * the backward, and a greedy decode loop whose KV cache grows by concatenation each step. It is
 * the peer of the CPU engine on identical weights and shapes.
 */
final class TorchPeer implements AutoCloseable {
    private final NDManager root;
    private final ModelConfig c;
    private final Map<String, NDArray> w = new LinkedHashMap<>();
    private final float[] invFreq;

    TorchPeer(ModelConfig config, Iterable<String> names, Function<String, float[]> values, Function<String, int[]> shapes, float[] invFreq) {
        this.c = config;
        this.invFreq = invFreq;
        this.root = NDManager.newBaseManager(Device.cpu(), "PyTorch");
        for (String n : names) {
            int[] s = shapes.apply(n);
            long[] dims = new long[s.length];
            for (int i = 0; i < s.length; i++) dims[i] = s[i];
            w.put(n, root.create(values.apply(n), new Shape(dims)));
        }
    }

    static String engineVersion() {
        Engine e = Engine.getEngine("PyTorch");
        return e.getEngineName() + " " + e.getVersion();
    }

    private NDArray p(String name) {
        return w.get(name);
    }

    private NDArray rmsnorm(NDArray x, NDArray weight) {
        return x.mul(x.square().mean(new int[]{-1}, true).add(c.rmsNormEps()).pow(-0.5)).mul(weight);
    }

    /** cos and sin [T, D] for positions from..from+T-1, halves duplicated as transformers builds them. */
    private NDArray[] rope(NDManager m, int from, int T) {
        int D = c.headDim(), half = D / 2;
        float[] cos = new float[T * D], sin = new float[T * D];
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < half; i++) {
                float a = (from + t) * invFreq[i];
                cos[t * D + i] = cos[t * D + i + half] = (float) Math.cos(a);
                sin[t * D + i] = sin[t * D + i + half] = (float) Math.sin(a);
            }
        }
        return new NDArray[]{m.create(cos, new Shape(T, D)), m.create(sin, new Shape(T, D))};
    }

    private NDArray applyRope(NDArray x, NDArray[] cs) {
        int half = c.headDim() / 2;
        NDArray x1 = x.get("..., :" + half), x2 = x.get("..., " + half + ":");
        NDArray rotated = x2.neg().concat(x1, -1);
        return x.mul(cs[0]).add(rotated.mul(cs[1]));
    }

    /** [B, T, heads*D] to [B, heads, T, D]. */
    private NDArray heads(NDArray x, int B, int T, int n) {
        return x.reshape(B, T, n, c.headDim()).transpose(0, 2, 1, 3);
    }

    private NDArray repeatKv(NDArray x) {
        int group = c.numHeads() / c.numKvHeads();
        return group == 1 ? x : x.repeat(1, group);
    }

    /**
     * Hidden states after the final norm for ids [B, T] at positions from..; appends each layer's
     * keys and values to caches when given (null entries start them).
     */
    private NDArray trunk(NDManager m, NDArray ids, int from, NDArray[] kCache, NDArray[] vCache) {
        long B = ids.getShape().get(0), T = ids.getShape().get(1);
        NDArray x = Embedding.embedding(ids, p("model.embed_tokens.weight"), SparseFormat.DENSE).singletonOrThrow();
        NDArray[] cs = rope(m, from, (int) T);
        NDArray mask = null;
        if (T > 1) {
            float[] mk = new float[(int) (T * T)];
            for (int i = 0; i < T; i++) for (int j = i + 1; j < T; j++) mk[(int) (i * T + j)] = Float.NEGATIVE_INFINITY;
            mask = m.create(mk, new Shape(T, T));
        }
        float scale = (float) (1.0 / Math.sqrt(c.headDim()));
        for (int l = 0; l < c.numLayers(); l++) {
            String pre = "model.layers." + l + ".";
            NDArray h = rmsnorm(x, p(pre + "input_layernorm.weight"));
            NDArray q = heads(Linear.linear(h, p(pre + "self_attn.q_proj.weight")).singletonOrThrow(), (int) B, (int) T, c.numHeads());
            NDArray k = heads(Linear.linear(h, p(pre + "self_attn.k_proj.weight")).singletonOrThrow(), (int) B, (int) T, c.numKvHeads());
            NDArray v = heads(Linear.linear(h, p(pre + "self_attn.v_proj.weight")).singletonOrThrow(), (int) B, (int) T, c.numKvHeads());
            q = applyRope(q, cs);
            k = applyRope(k, cs);
            if (kCache != null) {
                kCache[l] = kCache[l] == null ? k : kCache[l].concat(k, 2);
                vCache[l] = vCache[l] == null ? v : vCache[l].concat(v, 2);
                k = kCache[l];
                v = vCache[l];
            }
            NDArray scores = q.matMul(repeatKv(k).transpose(0, 1, 3, 2)).mul(scale);
            if (mask != null) scores = scores.add(mask);
            NDArray att = scores.softmax(-1).matMul(repeatKv(v)).transpose(0, 2, 1, 3).reshape(B, T, c.qDim());
            x = x.add(Linear.linear(att, p(pre + "self_attn.o_proj.weight")).singletonOrThrow());
            NDArray h2 = rmsnorm(x, p(pre + "post_attention_layernorm.weight"));
            NDArray gate = Linear.linear(h2, p(pre + "mlp.gate_proj.weight")).singletonOrThrow();
            NDArray up = Linear.linear(h2, p(pre + "mlp.up_proj.weight")).singletonOrThrow();
            NDArray act = gate.mul(Activation.sigmoid(gate)).mul(up);
            x = x.add(Linear.linear(act, p(pre + "mlp.down_proj.weight")).singletonOrThrow());
        }
        return rmsnorm(x, p("model.norm.weight"));
    }

    private NDArray tokenLogprobs(NDManager m, int[] ids, int B, int T) {
        NDArray in = m.create(ids, new Shape(B, T)).toType(DataType.INT64, false);
        NDArray hidden = trunk(m, in, 0, null, null);
        NDArray logits = Linear.linear(hidden, p("lm_head.weight")).singletonOrThrow();
        long[] next = new long[B * T];
        for (int b = 0; b < B; b++) for (int t = 0; t + 1 < T; t++) next[b * T + t] = ids[b * T + t + 1];
        NDArray targets = m.create(next, new Shape(B, T, 1));
        return logits.logSoftmax(-1).gather(targets, -1).reshape(B, T).get(":, :" + (T - 1));
    }

    /** Per-token logprobs [B, T-1] of the next tokens. */
    float[] forward(int[] ids, int B, int T) {
        try (NDScope scope = new NDScope(); NDManager m = root.newSubManager()) {
            scope.suppressNotUsedWarning();
            return tokenLogprobs(m, ids, B, T).toFloatArray();
        }
    }

    void forwardBackward(int[] ids, int B, int T) {
        for (NDArray a : w.values()) a.setRequiresGradient(true);
        try (NDScope scope = new NDScope(); NDManager m = root.newSubManager();
             GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
            scope.suppressNotUsedWarning();
            NDArray loss = tokenLogprobs(m, ids, B, T).mean().neg();
            gc.backward(loss);
        }
        for (NDArray a : w.values()) a.setRequiresGradient(false);
    }

    /** Greedy continuation of equal-length prompts [B, Tp] by newTokens tokens. */
    int[] generate(int[] prompt, int B, int Tp, int newTokens) {
        int[] out = new int[B * newTokens];
        try (NDScope scope = new NDScope(); NDManager m = root.newSubManager()) {
            scope.suppressNotUsedWarning();
            NDArray[] kc = new NDArray[c.numLayers()], vc = new NDArray[c.numLayers()];
            NDArray ids = m.create(prompt, new Shape(B, Tp)).toType(DataType.INT64, false);
            NDArray hidden = trunk(m, ids, 0, kc, vc).get(":, -1:, :");
            for (int s = 0; s < newTokens; s++) {
                NDArray next = Linear.linear(hidden, p("lm_head.weight")).singletonOrThrow().argMax(-1); // [B, 1]
                long[] tok = next.toLongArray();
                for (int b = 0; b < B; b++) out[b * newTokens + s] = (int) tok[b];
                if (s + 1 < newTokens) hidden = trunk(m, next.reshape(B, 1), Tp + s, kc, vc);
            }
        }
        return out;
    }

    @Override
    public void close() {
        root.close();
    }
}
