package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.TensorSet;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Batched generation with a KV cache. Prompts are left-padded to a common length and prefilled
 * with one forward; then each decode step feeds every sequence's last token. A decode step uses
 * only buffers allocated up front, and what changes from step to step (the fed tokens, rotary
 * positions, cache slots, draw counters, finished flags) lives in device tensors that the step's
 * own ops advance, so a backend may record the step once and replay it
 * ({@link Backend#capturable}).
 *
 * <p>Cache layout: sequence b's prompt occupies slots [0, Tp) with padding masked out, and new
 * token s sits at slot Tp + s - 1 with rotary position (real prompt length + s - 1), so a padded
 * sequence computes what it would alone. Sampling draws are counted per sequence
 * ({@code seqIds[b]}, step s), so a sequence's tokens do not depend on its batch.
 */
public final class Generator implements AutoCloseable {
    private final LlamaModel model;
    private final Backend backend;
    private final ModelConfig config;
    private DecodeState state;

    public Generator(LlamaModel model) {
        if (model.config().head() != ModelConfig.Head.CAUSAL_LM) {
            throw new IllegalArgumentException("generation needs a causal LM, not " + model.config().architecture());
        }
        this.model = model;
        this.backend = model.backend();
        this.config = model.config();
    }

    /** Options of one {@link #generate} call. */
    public record Options(int maxNewTokens, SamplingParams sampling, long seed, int[] eosIds, int padId, boolean keepLogits) {
        public Options {
            if (maxNewTokens < 0) throw new IllegalArgumentException("max new tokens must be >= 0, got " + maxNewTokens);
            if (padId < 0) throw new IllegalArgumentException("a pad token id >= 0 is needed (finished sequences are fed it), got " + padId);
            if (sampling == null || eosIds == null) throw new IllegalArgumentException("sampling and eosIds must be given (eosIds may be empty)");
        }

        public static Options greedy(int maxNewTokens, int[] eosIds, int padId) {
            return new Options(maxNewTokens, SamplingParams.GREEDY, 0, eosIds, padId, false);
        }
    }

    /** Generates for each prompt (seqIds default to the row index). */
    public GenerationResult generate(int[][] prompts, Options o) {
        int[] seqIds = new int[prompts.length];
        for (int b = 0; b < seqIds.length; b++) seqIds[b] = b;
        return generate(prompts, seqIds, o);
    }

    public GenerationResult generate(int[][] prompts, int[] seqIds, Options o) {
        int B = prompts.length;
        if (B == 0) return new GenerationResult(new int[0][], new boolean[0], o.keepLogits() ? new float[0][][] : null);
        if (seqIds.length != B) throw new IllegalArgumentException(seqIds.length + " sequence ids for " + B + " prompts");
        for (int b = 0; b < B; b++) {
            if (prompts[b].length == 0) throw new IllegalArgumentException("prompt " + b + " is empty");
        }
        if (o.maxNewTokens() == 0) {
            return new GenerationResult(new int[B][0], new boolean[B], o.keepLogits() ? new float[B][0][] : null);
        }
        Batch prompt = Batch.leftPadded(prompts, o.padId());
        int Tp = prompt.time();
        int S = Tp + o.maxNewTokens();
        if (state == null || !state.fits(B, S, o)) {
            if (state != null) state.free();
            state = new DecodeState(B, S, o);
        }
        DecodeState d = state;
        d.reset(prompt, seqIds);
        prefill(d, prompt, o);
        int V = config.vocabSize();
        List<float[]> logits = o.keepLogits() ? new ArrayList<>() : null;
        if (logits != null) logits.add(backend.download(d.logits));
        int steps = 1;
        while (steps < o.maxNewTokens() && !allFinished(d)) {
            d.step.run();
            steps++;
            if (logits != null) logits.add(backend.download(d.logits));
        }
        int[] generated = backend.downloadInts(d.generated);
        int[][] tokens = new int[B][];
        boolean[] eos = new boolean[B];
        float[][][] stepLogits = logits == null ? null : new float[B][][];
        for (int b = 0; b < B; b++) {
            int n = 0;
            while (n < steps) {
                int id = generated[b * d.maxNew + n];
                n++;
                if (contains(o.eosIds(), id)) {
                    eos[b] = true;
                    break;
                }
            }
            tokens[b] = Arrays.copyOfRange(generated, b * d.maxNew, b * d.maxNew + n);
            if (stepLogits != null) {
                stepLogits[b] = new float[n][];
                for (int s = 0; s < n; s++) stepLogits[b][s] = Arrays.copyOfRange(logits.get(s), b * V, (b + 1) * V);
            }
        }
        return new GenerationResult(tokens, eos, stepLogits);
    }

    private static boolean contains(int[] ids, int id) {
        for (int x : ids) if (x == id) return true;
        return false;
    }

    private boolean allFinished(DecodeState d) {
        for (int f : backend.downloadInts(d.finished)) if (f == 0) return false;
        return true;
    }

    /** One forward over the padded prompts; fills the caches and draws the first token. */
    private void prefill(DecodeState d, Batch prompt, Options o) {
        int B = prompt.batch(), Tp = prompt.time();
        Activations a = new Activations(backend, config, B, Tp);
        try {
            model.trunk(a, prompt);
            for (int l = 0; l < config.numLayers(); l++) {
                backend.kvAppend(d.kCache[l], a.k[l], d.zeroSlots);
                backend.kvAppend(d.vCache[l], a.v[l], d.zeroSlots);
            }
            backend.kvAppend(d.cacheMask, a.mask, d.zeroSlots);
            int[] lastRows = new int[B];
            for (int b = 0; b < B; b++) lastRows[b] = b * Tp + Tp - 1;
            backend.upload(d.lastRows, lastRows);
            backend.gatherRows(d.lnf, a.lnf, d.lastRows);
        } finally {
            a.free();
        }
        backend.matmul(d.logits, d.lnf, model.parameters().lmHead, null);
        backend.sample(d.tokens, d.logits, d.finished, d.seqIds, d.steps, o.seed(), o.sampling(), o.eosIds(), o.padId());
        backend.kvAppend(d.generated, d.tokens, d.steps);
    }

    /** The buffers of a decode batch and its step. */
    private final class DecodeState {
        final int B, S, maxNew;
        final Options options;
        final Tensor tokens, positions, slots, steps, finished, seqIds, zeroSlots, lastRows, ones, cacheMask, generated;
        final Tensor[] kCache, vCache;
        final Tensor x, ln, rstd, q, k, v, att, h, gate, up, swi, lnf, logits;
        final Runnable step;
        private final TensorSet buffers = new TensorSet(backend);

        DecodeState(int B, int S, Options o) {
            this.B = B;
            this.S = S;
            this.maxNew = o.maxNewTokens();
            this.options = o;
            int C = config.hiddenSize(), I = config.intermediateSize(), L = config.numLayers();
            tokens = buffers.ints(B);
            positions = buffers.ints(B);
            slots = buffers.ints(B);
            steps = buffers.ints(B);
            finished = buffers.ints(B);
            seqIds = buffers.ints(B);
            zeroSlots = buffers.ints(B);
            lastRows = buffers.ints(B);
            ones = buffers.ints(B, 1);
            cacheMask = buffers.ints(B, S);
            generated = buffers.ints(B, maxNew);
            kCache = new Tensor[L];
            vCache = new Tensor[L];
            for (int l = 0; l < L; l++) {
                kCache[l] = buffers.floats(B, S, config.kvDim());
                vCache[l] = buffers.floats(B, S, config.kvDim());
            }
            x = buffers.floats(B, C);
            ln = buffers.floats(B, C);
            rstd = buffers.floats(B);
            q = buffers.floats(B, config.qDim());
            k = buffers.floats(B, config.kvDim());
            v = buffers.floats(B, config.kvDim());
            att = buffers.floats(B, config.qDim());
            h = buffers.floats(B, C);
            gate = buffers.floats(B, I);
            up = buffers.floats(B, I);
            swi = buffers.floats(B, I);
            lnf = buffers.floats(B, C);
            logits = buffers.floats(B, config.vocabSize());
            int[] one = new int[B];
            Arrays.fill(one, 1);
            backend.upload(ones, one);
            step = backend.capturable(this::decodeStep);
        }

        boolean fits(int b, int s, Options o) {
            return b == B && s == S && o.maxNewTokens() == maxNew && o.seed() == options.seed()
                    && o.sampling().equals(options.sampling()) && Arrays.equals(o.eosIds(), options.eosIds()) && o.padId() == options.padId();
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
            backend.zero(steps);
            backend.zero(finished);
            backend.upload(seqIds, ids);
            backend.zero(cacheMask);
            backend.zero(generated);
        }

        /** One new token per sequence: everything it reads or advances is in the tensors above. */
        private void decodeStep() {
            int H = config.numHeads(), KV = config.numKvHeads();
            float eps = config.rmsNormEps();
            LlamaWeights p = model.parameters();
            backend.embedding(x, tokens, p.embed);
            backend.kvAppend(cacheMask, ones, slots);
            LlamaModel.LayerBuffers buffers = new LlamaModel.LayerBuffers(x, ln, rstd, q, k, v, att, h, ln, rstd, gate, up, swi, x);
            for (int l = 0; l < config.numLayers(); l++) {
                final int layer = l;
                model.layer(l, buffers, positions, () -> {
                    backend.kvAppend(kCache[layer], k, slots);
                    backend.kvAppend(vCache[layer], v, slots);
                    backend.decodeAttention(att, q, kCache[layer], vCache[layer], cacheMask, slots, H, KV, config.slidingWindows()[layer]);
                }, null, null);
            }
            backend.rmsnorm(lnf, rstd, x, p.finalNorm, eps);
            backend.matmul(logits, lnf, p.lmHead, null);
            backend.addInt(steps, 1);
            backend.sample(tokens, logits, finished, seqIds, steps, options.seed(), options.sampling(), options.eosIds(), options.padId());
            backend.kvAppend(generated, tokens, steps);
            backend.addInt(positions, 1);
            backend.addInt(slots, 1);
        }



        void free() {
            backend.releaseCaptured(step);
            buffers.free();
        }
    }

    @Override
    public void close() {
        if (state != null) state.free();
        state = null;
    }
}
