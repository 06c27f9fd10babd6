package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.TensorSet;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * {@link Generator} on a {@link ShardedLlama}: the same cache layout, positions, sampling draws and
 * stopping, so it gives the tokens the unsharded generator gives for the same seed. Each stage
 * keeps the KV caches of its own layers (its tensor rank's kv heads); stage 0 embeds the fed
 * tokens, each stage passes the hidden states [B, C] of a step to the next, and the last stage
 * gathers the vocabulary-parallel logits, samples, and broadcasts the tokens and finished flags to
 * every stage (and the logits when they are kept). Every rank returns the same result.
 *
 * <p>A step moves data between ranks on the host, so it is not recorded as a graph
 * ({@link Backend#capturable}); one step runs through the stages one after the other (no
 * overlap between the sequences of a batch).
 */
public final class ShardedGenerator {
    private final ShardedLlama model;
    private final Backend backend;
    private final ModelConfig config;
    private final ShardSpec shard;

    public ShardedGenerator(ShardedLlama model) {
        if (model.config().head() != ModelConfig.Head.CAUSAL_LM) {
            throw new IllegalArgumentException("generation needs a causal LM, not " + model.config().architecture());
        }
        this.model = model;
        this.backend = model.backend();
        this.config = model.config();
        this.shard = model.shard();
    }

    /** Generates for each prompt (seqIds default to the row index). */
    public GenerationResult generate(int[][] prompts, Generator.Options o) {
        int[] seqIds = new int[prompts.length];
        for (int b = 0; b < seqIds.length; b++) seqIds[b] = b;
        return generate(prompts, seqIds, o);
    }

    public GenerationResult generate(int[][] prompts, int[] seqIds, Generator.Options o) {
        int B = prompts.length;
        if (B == 0) return new GenerationResult(new int[0][], new boolean[0], o.keepLogits() ? new float[0][][] : null);
        if (seqIds.length != B) throw new IllegalArgumentException(seqIds.length + " sequence ids for " + B + " prompts");
        // checked on every rank, so that a bad prompt fails every stage instead of leaving the others waiting
        int V = config.vocabSize();
        for (int b = 0; b < B; b++) {
            if (prompts[b].length == 0) throw new IllegalArgumentException("prompt " + b + " is empty");
            for (int t = 0; t < prompts[b].length; t++) {
                int id = prompts[b][t];
                if (id < 0 || id >= V) throw new IllegalArgumentException("prompt " + b + ", position " + t + ": token id " + id + " outside the vocabulary [0, " + V + ")");
            }
        }
        if (o.padId() >= V) throw new IllegalArgumentException("pad token id " + o.padId() + " outside the vocabulary [0, " + V + ")");
        if (o.maxNewTokens() == 0) {
            return new GenerationResult(new int[B][0], new boolean[B], o.keepLogits() ? new float[B][0][] : null);
        }
        Batch prompt = Batch.leftPadded(prompts, o.padId());
        DecodeState d = new DecodeState(B, prompt.time() + o.maxNewTokens(), o);
        try {
            d.reset(prompt, seqIds);
            int[][] generated = new int[B][o.maxNewTokens()];
            List<float[]> logits = o.keepLogits() ? new ArrayList<>() : null;
            boolean allFinished = d.prefill(prompt, generated, logits);
            int steps = 1;
            while (steps < o.maxNewTokens() && !allFinished) {
                allFinished = d.step(steps, generated, logits);
                steps++;
            }
            int[][] tokens = new int[B][];
            boolean[] eos = new boolean[B];
            float[][][] stepLogits = logits == null ? null : new float[B][][];
            for (int b = 0; b < B; b++) {
                int n = 0;
                while (n < steps) {
                    int id = generated[b][n];
                    n++;
                    if (contains(o.eosIds(), id)) {
                        eos[b] = true;
                        break;
                    }
                }
                tokens[b] = Arrays.copyOf(generated[b], n);
                if (stepLogits != null) {
                    stepLogits[b] = new float[n][];
                    for (int s = 0; s < n; s++) stepLogits[b][s] = Arrays.copyOfRange(logits.get(s), b * V, (b + 1) * V);
                }
            }
            return new GenerationResult(tokens, eos, stepLogits);
        } finally {
            d.free();
        }
    }

    private static boolean contains(int[] ids, int id) {
        for (int x : ids) if (x == id) return true;
        return false;
    }

    /** One generate call's buffers on this rank: its stage's caches and the last stage's sampling state. */
    private final class DecodeState {
        final int B, S;
        final Generator.Options options;
        final Tensor localIds, positions, slots, zeroSlots, ones, cacheMask;
        final Tensor[] kCache, vCache;
        final Tensor x, ln, rstd, q, k, v, att, h, gate, up, swi;
        /** Last stage only. */
        Tensor lnf, localLogits, logits, lastRows, sampled, steps, finished, seqIds;
        /** The tokens fed to the next step, as broadcast by the last stage. */
        int[] fed;
        private final TensorSet buffers = new TensorSet(backend);

        DecodeState(int B, int S, Generator.Options o) {
            this.B = B;
            this.S = S;
            this.options = o;
            int C = config.hiddenSize(), L = model.numLocalLayers();
            localIds = buffers.ints(B);
            positions = buffers.ints(B);
            slots = buffers.ints(B);
            zeroSlots = buffers.ints(B);
            ones = buffers.ints(B, 1);
            cacheMask = buffers.ints(B, S);
            kCache = new Tensor[L];
            vCache = new Tensor[L];
            for (int l = 0; l < L; l++) {
                kCache[l] = buffers.floats(B, S, model.kvDim());
                vCache[l] = buffers.floats(B, S, model.kvDim());
            }
            x = buffers.floats(B, C);
            ln = buffers.floats(B, C);
            rstd = buffers.floats(B);
            q = buffers.floats(B, model.qDim());
            k = buffers.floats(B, model.kvDim());
            v = buffers.floats(B, model.kvDim());
            att = buffers.floats(B, model.qDim());
            h = buffers.floats(B, C);
            gate = buffers.floats(B, model.inter());
            up = buffers.floats(B, model.inter());
            swi = buffers.floats(B, model.inter());
            if (shard.lastStage()) {
                lnf = buffers.floats(B, C);
                int Vt = model.vocabEnd() - model.vocabStart();
                localLogits = buffers.floats(B, Vt);
                logits = Vt == config.vocabSize() ? localLogits : buffers.floats(B, config.vocabSize());
                lastRows = buffers.ints(B);
                sampled = buffers.ints(B);
                steps = buffers.ints(B);
                finished = buffers.ints(B);
                seqIds = buffers.ints(B);
            }
            int[] one = new int[B];
            Arrays.fill(one, 1);
            backend.upload(ones, one);
        }

        void reset(Batch prompt, int[] ids) {
            int[] pos = new int[B], sl = new int[B];
            for (int b = 0; b < B; b++) {
                int real = 0;
                for (int t = 0; t < prompt.time(); t++) real += prompt.mask()[b * prompt.time() + t];
                pos[b] = real;
                sl[b] = prompt.time();
            }
            backend.upload(positions, pos);
            backend.upload(slots, sl);
            if (shard.lastStage()) {
                backend.zero(steps);
                backend.zero(finished);
                backend.upload(seqIds, ids);
            }
        }

        /** The prompts' forward through this stage, filling its caches; the last stage draws the first tokens. */
        boolean prefill(Batch prompt, int[][] generated, List<float[]> keptLogits) {
            int Tp = prompt.time();
            StageActivations a = model.newActivations(B, Tp);
            try {
                model.stageForward(a, prompt);
                for (int l = 0; l < model.numLocalLayers(); l++) {
                    backend.kvAppend(kCache[l], a.k[l], zeroSlots);
                    backend.kvAppend(vCache[l], a.v[l], zeroSlots);
                }
                backend.kvAppend(cacheMask, a.mask, zeroSlots);
                if (shard.lastStage()) {
                    int[] rows = new int[B];
                    for (int b = 0; b < B; b++) rows[b] = b * Tp + Tp - 1;
                    backend.upload(lastRows, rows);
                    backend.gatherRows(lnf, a.lnf, lastRows);
                }
            } finally {
                a.free();
            }
            return sampleAndShare(0, generated, keptLogits);
        }

        /** Decode step s (s >= 1): the fed tokens through this stage's layers; the last stage draws. */
        boolean step(int s, int[][] generated, List<float[]> keptLogits) {
            int H = model.heads(), KV = model.kvHeads();
            float eps = config.rmsNormEps();
            if (shard.firstStage()) model.embedTokens(x, localIds, fed);
            else model.recvFrom(shard.stage() - 1, x);
            backend.kvAppend(cacheMask, ones, slots);
            for (int l = 0; l < model.numLocalLayers(); l++) {
                LlamaWeights.Layer w = model.layers[l];
                int window = config.slidingWindows()[model.firstLayer() + l];
                backend.rmsnorm(ln, rstd, x, w.inputNorm(), eps);
                backend.matmul(q, ln, w.q(), w.qBias());
                backend.matmul(k, ln, w.k(), w.kBias());
                backend.matmul(v, ln, w.v(), w.vBias());
                backend.rotary(q, positions, model.invFreq, H);
                backend.rotary(k, positions, model.invFreq, KV);
                backend.kvAppend(kCache[l], k, slots);
                backend.kvAppend(vCache[l], v, slots);
                backend.decodeAttention(att, q, kCache[l], vCache[l], cacheMask, slots, H, KV, window);
                backend.matmul(h, att, w.o(), shard.tpRank() == 0 ? w.oBias() : null);
                model.allReduceTp(h);
                backend.add(h, h, x);
                backend.rmsnorm(ln, rstd, h, w.postNorm(), eps);
                backend.matmul(gate, ln, w.gate(), w.gateBias());
                backend.matmul(up, ln, w.up(), w.upBias());
                backend.swiglu(swi, gate, up);
                backend.matmul(x, swi, w.down(), shard.tpRank() == 0 ? w.downBias() : null);
                model.allReduceTp(x);
                backend.add(x, x, h);
            }
            if (!shard.lastStage()) model.sendTo(shard.stage() + 1, x);
            else backend.rmsnorm(lnf, rstd, x, model.finalNorm, eps);
            backend.addInt(positions, 1);
            backend.addInt(slots, 1);
            return sampleAndShare(s, generated, keptLogits);
        }

        /**
         * The last stage computes the logits of lnf and draws token s of every sequence; the tokens,
         * finished flags (and logits when kept) go to every stage. Returns whether all have finished.
         */
        boolean sampleAndShare(int s, int[][] generated, List<float[]> keptLogits) {
            int V = config.vocabSize();
            boolean keep = keptLogits != null;
            float[] payload = null;
            int length = 2 * B + (keep ? B * V : 0);
            if (shard.lastStage()) {
                backend.matmul(localLogits, lnf, model.lmHead, null);
                model.gatherLogits(logits, localLogits, B);
                if (s > 0) backend.addInt(steps, 1);
                backend.sample(sampled, logits, finished, seqIds, steps, options.seed(), options.sampling(),
                        options.eosIds(), options.padId());
                payload = new float[length];
                int[] tok = backend.downloadInts(sampled), fin = backend.downloadInts(finished);
                for (int b = 0; b < B; b++) {
                    payload[b] = tok[b];
                    payload[B + b] = fin[b];
                }
                if (keep) System.arraycopy(backend.download(logits), 0, payload, 2 * B, B * V);
            }
            payload = model.broadcastFromLast(payload, length);
            fed = new int[B];
            boolean allFinished = true;
            for (int b = 0; b < B; b++) {
                fed[b] = (int) payload[b];
                generated[b][s] = fed[b];
                allFinished &= payload[B + b] != 0f;
            }
            if (keep) keptLogits.add(Arrays.copyOfRange(payload, 2 * B, length));
            return allFinished;
        }



        void free() {
            buffers.free();
        }
    }
}
