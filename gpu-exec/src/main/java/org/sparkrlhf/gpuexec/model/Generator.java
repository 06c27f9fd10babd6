package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.TensorSet;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Batched generation with a KV cache, on a whole model or on one rank's shard of it. Prompts are
 * left-padded to a common length and prefilled by forwards over passes of at most the model's
 * {@link LlamaModel#maxTokensPerPass() tokens per pass} that keep no layer's activations; then each
 * decode step feeds every sequence's last token.
 *
 * <p>On the whole model a decode step uses only buffers allocated up front, and what changes from
 * step to step (the fed tokens, rotary positions, cache slots, draw counters, finished flags) lives
 * in device tensors that the step's own ops advance, so a backend may record the step once and
 * replay it ({@link Backend#capturable}). On a shard each stage keeps the KV caches of its own
 * layers (its tensor rank's kv heads); stage 0 embeds the fed tokens, each stage passes the hidden
 * states [B, C] of a step to the next, and the last stage gathers the vocabulary-parallel logits,
 * samples, and broadcasts the tokens and finished flags to every stage (and the logits when they
 * are kept); such a step moves data between ranks on the host, so it is not recorded. Every rank
 * returns the same result, the tokens the whole model gives for the same seed.
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
    private final ShardSpec shard;
    private final ParallelGroups groups;
    private DecodeState state;

    public Generator(LlamaModel model) {
        if (model.config().head() != ModelConfig.Head.CAUSAL_LM) {
            throw new IllegalArgumentException("generation needs a causal LM, not " + model.config().architecture());
        }
        this.model = model;
        this.backend = model.backend();
        this.config = model.config();
        this.shard = model.shard();
        this.groups = model.groups();
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
        int S = prompt.time() + o.maxNewTokens();
        if (state == null || !state.fits(B, S, o)) {
            if (state != null) state.free();
            state = new DecodeState(B, S, o);
        }
        DecodeState d = state;
        d.reset(prompt, seqIds);
        List<float[]> logits = o.keepLogits() ? new ArrayList<>() : null;
        boolean allFinished = d.prefill(prompt, logits);
        int steps = 1;
        while (steps < o.maxNewTokens() && !allFinished) {
            allFinished = d.step(steps, logits);
            steps++;
        }
        int[] generated = d.generated();
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

    /** The buffers of a decode batch on this rank (its stage's caches; the last stage's sampling state) and its step. */
    private final class DecodeState {
        final int B, S, maxNew;
        final Options options;
        final boolean whole = model.isWhole();
        final Tensor tokens, localIds, positions, slots, zeroSlots, ones, cacheMask;
        final Tensor[] kCache, vCache;
        final Tensor x, rstd, q, k, v, att;
        final LlamaModel.LayerBuffers layerBuffers;
        /** Last stage only. */
        final Tensor lnf, localLogits, logits, steps, finished, seqIds;
        /** The whole model's tokens [B, maxNew], kept on the device. */
        final Tensor generatedOnDevice;
        /** A shard's tokens [B, maxNew], as the last stage broadcast them. */
        final int[] generatedShared;
        /** A shard's tokens fed to the next step, as the last stage broadcast them. */
        int[] fed;
        /** The whole model's decode step, recorded once where the backend can. */
        final Runnable wholeStep;
        private final TensorSet buffers = new TensorSet(backend);

        DecodeState(int B, int S, Options o) {
            this.B = B;
            this.S = S;
            this.maxNew = o.maxNewTokens();
            this.options = o;
            int C = config.hiddenSize();
            tokens = buffers.ints(B);
            localIds = whole ? null : buffers.ints(B);
            positions = buffers.ints(B);
            slots = buffers.ints(B);
            zeroSlots = buffers.ints(B);
            ones = buffers.ints(B, 1);
            cacheMask = buffers.ints(B, S);
            DecodeBuffers d = new DecodeBuffers(buffers, model, B, S, B);
            layerBuffers = d.layer;
            kCache = d.kCache;
            vCache = d.vCache;
            x = d.x;
            rstd = d.rstd;
            q = d.q;
            k = d.k;
            v = d.v;
            att = d.att;
            boolean last = shard.lastStage();
            int Vt = model.vocabEnd() - model.vocabStart();
            lnf = last ? buffers.activations(B, C) : null;
            localLogits = last ? buffers.floats(B, Vt) : null;
            logits = !last ? null : Vt == config.vocabSize() ? localLogits : buffers.floats(B, config.vocabSize());
            steps = last ? buffers.ints(B) : null;
            finished = last ? buffers.ints(B) : null;
            seqIds = last ? buffers.ints(B) : null;
            generatedOnDevice = whole ? buffers.ints(B, maxNew) : null;
            generatedShared = whole ? null : new int[B * maxNew];
            int[] one = new int[B];
            Arrays.fill(one, 1);
            backend.upload(ones, one);
            wholeStep = whole ? backend.capturable(this::wholeDecodeStep) : null;
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
            backend.zero(cacheMask);
            if (shard.lastStage()) {
                backend.zero(steps);
                backend.zero(finished);
                backend.upload(seqIds, ids);
            }
            if (whole) backend.zero(generatedOnDevice);
            else Arrays.fill(generatedShared, 0);
        }

        /** The tokens [B, maxNew] drawn so far (the rest 0). */
        int[] generated() {
            return whole ? backend.downloadInts(generatedOnDevice) : generatedShared;
        }

        /**
         * The padded prompts through this stage, filling its caches; the last stage draws the first
         * tokens. The rows run in passes of at most the model's tokens per pass, each keeping one
         * layer's buffers: after each layer the pass's keys and values go to its rows of the caches,
         * and after the last its final-norm output at each row's last position goes to lnf.
         */
        boolean prefill(Batch prompt, List<float[]> keptLogits) {
            int Tp = prompt.time();
            int C = config.hiddenSize();
            int next = 0;
            for (Batch pass : model.passes(List.of(prompt))) {
                int first = next, n = pass.batch();
                next += n;
                Activations a = Activations.forPrefill(model, n, Tp);
                TensorSet scratch = new TensorSet(backend);
                try {
                    Tensor passSlots = scratch.ints(n);
                    model.trunk(a, pass, null, l -> {
                        backend.kvAppend(kCache[l], a.k[l], passSlots, first);
                        backend.kvAppend(vCache[l], a.v[l], passSlots, first);
                    });
                    backend.kvAppend(cacheMask, a.mask, passSlots, first);
                    if (shard.lastStage()) {
                        Tensor rows = scratch.ints(n), last = scratch.floats(n, C);
                        int[] r = new int[n];
                        for (int b = 0; b < n; b++) r[b] = b * Tp + Tp - 1;
                        backend.upload(rows, r);
                        backend.gatherRows(last, a.lnf, rows);
                        // lnf [B, C] as a cache of B rows of C one-wide slots: rows first.. take the pass's last positions
                        backend.kvAppend(lnf, last, passSlots, first);
                    }
                } finally {
                    a.free();
                    scratch.free();
                }
            }
            if (shard.lastStage()) draw(false);
            return finishStep(0, keptLogits);
        }

        /** Decode step s (s >= 1): the fed tokens through this stage's layers; the last stage draws. */
        boolean step(int s, List<float[]> keptLogits) {
            if (whole) {
                wholeStep.run();
            } else {
                if (shard.firstStage()) groups.embedTokens(x, localIds, fed, model.parameters().embed);
                else groups.recvFrom(shard.stage() - 1, x);
                layers();
                if (!shard.lastStage()) groups.sendTo(shard.stage() + 1, x);
                else backend.rmsnorm(lnf, rstd, x, model.parameters().finalNorm, config.rmsNormEps());
                backend.addInt(positions, 1);
                backend.addInt(slots, 1);
                if (shard.lastStage()) draw(true);
            }
            return finishStep(s, keptLogits);
        }

        /** One new token per sequence on the whole model: everything it reads or advances is in the tensors above. */
        private void wholeDecodeStep() {
            backend.embedding(x, tokens, model.parameters().embed);
            layers();
            backend.rmsnorm(lnf, rstd, x, model.parameters().finalNorm, config.rmsNormEps());
            draw(true);
            backend.addInt(positions, 1);
            backend.addInt(slots, 1);
        }

        /** This stage's layers over x, appending the step's keys and values to the caches. */
        private void layers() {
            int H = model.heads(), KV = model.kvHeads();
            backend.kvAppend(cacheMask, ones, slots);
            LlamaModel.LayerBuffers b = layerBuffers;
            for (int l = 0; l < model.numLocalLayers(); l++) {
                final int layer = l;
                int window = config.slidingWindows()[model.globalLayer(l)];
                model.layer(l, b, positions, () -> {
                    backend.kvAppend(kCache[layer], k, slots);
                    backend.kvAppend(vCache[layer], v, slots);
                    backend.decodeAttention(att, q, kCache[layer], vCache[layer], cacheMask, slots, H, KV, window);
                }, null, null);
            }
        }

        /** Last stage: the logits of lnf, and the next token of every sequence (the draw counter advanced first after the prefill). */
        private void draw(boolean advance) {
            backend.matmul(localLogits, lnf, model.parameters().lmHead, null);
            groups.gatherLogits(logits, localLogits, B);
            if (advance) backend.addInt(steps, 1);
            backend.sample(tokens, logits, finished, seqIds, steps, options.seed(), options.sampling(),
                    options.eosIds(), options.padId());
            if (whole) backend.kvAppend(generatedOnDevice, tokens, steps);
        }

        /**
         * After token s is drawn: keeps its logits when asked and tells whether every sequence has
         * finished. On a shard the last stage broadcasts the tokens, finished flags (and logits when
         * kept) to every stage.
         */
        boolean finishStep(int s, List<float[]> keptLogits) {
            boolean keep = keptLogits != null;
            if (whole) {
                if (keep) keptLogits.add(backend.download(logits));
                for (int f : backend.downloadInts(finished)) if (f == 0) return false;
                return true;
            }
            int V = config.vocabSize();
            float[] payload = null;
            int length = 2 * B + (keep ? B * V : 0);
            if (shard.lastStage()) {
                payload = new float[length];
                int[] tok = backend.downloadInts(tokens), fin = backend.downloadInts(finished);
                for (int b = 0; b < B; b++) {
                    payload[b] = tok[b];
                    payload[B + b] = fin[b];
                }
                if (keep) System.arraycopy(backend.download(logits), 0, payload, 2 * B, B * V);
            }
            payload = groups.broadcastFromLast(payload, length);
            fed = new int[B];
            boolean allFinished = true;
            for (int b = 0; b < B; b++) {
                fed[b] = (int) payload[b];
                generatedShared[b * maxNew + s] = fed[b];
                allFinished &= payload[B + b] != 0f;
            }
            if (keep) keptLogits.add(Arrays.copyOfRange(payload, 2 * B, length));
            return allFinished;
        }

        void free() {
            if (wholeStep != null) backend.releaseCaptured(wholeStep);
            buffers.free();
        }
    }

    @Override
    public void close() {
        if (state != null) state.free();
        state = null;
    }
}
