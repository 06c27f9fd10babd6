package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.TensorSet;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * S3D self-speculative generation. After the prompts' prefill (as {@link Generator}'s), each step
 * of the batch runs two forwards over the KV cache, k + 1 rows per sequence:
 * <ol>
 *   <li>the draft: the sequence's pending token (the last emitted one, not yet in the cache) and
 *       k mask embeddings through the model without the layers [skipFrom, skipTo); mask i's
 *       logits give draft token i (greedy: argmax, else drawn from q_i);</li>
 *   <li>the verification: the pending token and the k drafts through the whole model, whose k + 1
 *       rows give p_0..p_k; {@link SpeculativeSampling} keeps the accepted drafts and adds the
 *       verifier's own token.</li>
 * </ol>
 * The verification writes every layer's keys and values of its k + 1 rows, overwriting the
 * draft's; a sequence that accepted j drafts then advances its slot and rotary position by j + 1,
 * which rolls its cache back past the first rejection: the slots beyond are stale but never read
 * (attention reads slots up to the query's own, and the next forward writes them again). So the
 * cache and positions are those plain decoding leaves, per sequence, whatever the others accept.
 *
 * <p>Layout as {@link Generator}: prompts left-padded to Tp, new token s at slot Tp + s - 1 with
 * rotary position (real prompt length + s - 1). Draws of sequence seqIds[b] use
 * {@code CounterRng.uniform(seed, seqIds[b], n)} with n counting that sequence's draws, so its
 * tokens do not depend on its batch. Attention of several rows over the cache runs as one
 * {@link Backend#decodeAttention} per row offset, so the draft needs no op beyond those of plain
 * decoding.
 *
 * <p>Both forwards have fixed shapes for a batch (B x (k + 1) rows), so each is recorded once per
 * generate call ({@link Backend#capturable}: a CUDA graph) and replayed at every step; the CPU
 * backend runs them as they are. What changes from step to step (the fed tokens, rotary positions
 * and cache slots after each sequence's rollback) is uploaded into fixed device buffers before the
 * replay, and the logits are downloaded after it. The acceptance decisions between the draft and
 * the verification are taken on the host from those logits, so the step as a whole is not one
 * graph: the two forwards are, and the host work between them (drawing drafts, verifying) is not.
 * The graphs are released when the call frees its buffers.
 */
public final class SpeculativeGenerator {
    private final LlamaModel model;
    private final S3dDraft draft;
    private final Backend backend;
    private final ModelConfig config;
    private final boolean recordSteps;

    public SpeculativeGenerator(LlamaModel model, S3dDraft draft) {
        this(model, draft, true);
    }

    /**
     * With {@code recordSteps} false the forwards run op by op on every step, never recorded: the
     * same ops, so the same tokens, which is how a test checks the replayed graphs.
     */
    public SpeculativeGenerator(LlamaModel model, S3dDraft draft, boolean recordSteps) {
        if (model.config().head() != ModelConfig.Head.CAUSAL_LM) {
            throw new IllegalArgumentException("generation needs a causal LM, not " + model.config().architecture());
        }
        model.requireWhole("speculative decoding");
        draft.config().check(model.config().numLayers());
        this.model = model;
        this.draft = draft;
        this.backend = model.backend();
        this.config = model.config();
        this.recordSteps = recordSteps;
    }

    /** The tokens of a generation and what its speculation did. */
    public record Result(GenerationResult generation, SpeculativeStats stats) {
    }

    public Result generate(int[][] prompts, Generator.Options o) {
        int[] seqIds = new int[prompts.length];
        for (int b = 0; b < seqIds.length; b++) seqIds[b] = b;
        return generate(prompts, seqIds, o);
    }

    public Result generate(int[][] prompts, int[] seqIds, Generator.Options o) {
        int B = prompts.length;
        if (seqIds.length != B) throw new IllegalArgumentException(seqIds.length + " sequence ids for " + B + " prompts");
        for (int b = 0; b < B; b++) if (prompts[b].length == 0) throw new IllegalArgumentException("prompt " + b + " is empty");
        SpeculativeStats none = new SpeculativeStats(0, 0, 0, 0, 0, 0, 0);
        if (B == 0 || o.maxNewTokens() == 0) {
            return new Result(new GenerationResult(new int[B][0], new boolean[B], o.keepLogits() ? new float[B][0][] : null), none);
        }
        Batch prompt = Batch.leftPadded(prompts, o.padId());
        int k = draft.config().draftTokens();
        CachedForward f = new CachedForward(B, k + 1, prompt.time() + o.maxNewTokens() + k + 1);
        try {
            return run(f, prompt, seqIds, o);
        } finally {
            f.free();
        }
    }

    private Result run(CachedForward f, Batch prompt, int[] seqIds, Generator.Options o) {
        int B = prompt.batch(), Tp = prompt.time(), V = config.vocabSize(), k = draft.config().draftTokens(), Tn = k + 1;
        SamplingParams sp = o.sampling();
        SpeculativeSampling.Draws[] draws = new SpeculativeSampling.Draws[B];
        List<List<Integer>> out = new ArrayList<>();
        // with keepLogits: per emitted token, the logits row it was chosen from
        List<List<float[]>> rows = new ArrayList<>();
        boolean[] done = new boolean[B], eos = new boolean[B];
        int[] pending = new int[B], pos = new int[B], slot = new int[B];
        float[] first = f.prefill(prompt);
        for (int b = 0; b < B; b++) {
            draws[b] = new SpeculativeSampling.Draws(o.seed(), seqIds[b]);
            out.add(new ArrayList<>());
            rows.add(new ArrayList<>());
            for (int t = 0; t < Tp; t++) pos[b] += prompt.mask()[b * Tp + t];
            slot[b] = Tp;
            pending[b] = SpeculativeSampling.pick(first, b * V, V, sp, draws[b]);
            int n = emit(out.get(b), new int[]{pending[b]}, o, b, done, eos);
            if (o.keepLogits()) keepRows(rows.get(b), first, b * V, n, V);
        }
        long verifySteps = 0, sequenceSteps = 0, drafted = 0, accepted = 0, rejecting = 0;
        long draftNanos = 0, verifyNanos = 0;
        int[] ids = new int[B * Tn];
        int[][] drafts = new int[B][];
        int[] livePos = new int[B], liveSlot = new int[B];
        while (!allTrue(done)) {
            long t0 = System.nanoTime();
            // a finished sequence computes pad rows at slot 0 (its cache is no longer read), so
            // its slots stay inside the cache whatever its last step advanced them to
            for (int b = 0; b < B; b++) {
                ids[b * Tn] = done[b] ? o.padId() : pending[b];
                livePos[b] = done[b] ? 0 : pos[b];
                liveSlot[b] = done[b] ? 0 : slot[b];
            }
            float[] q = f.forward(ids, livePos, liveSlot, true);
            for (int b = 0; b < B; b++) {
                drafts[b] = done[b] ? new int[k] : SpeculativeSampling.draft(q, (b * Tn + 1) * V, V, k, sp, draws[b]);
            }
            long t1 = System.nanoTime();
            for (int b = 0; b < B; b++) {
                ids[b * Tn] = done[b] ? o.padId() : pending[b];
                for (int i = 0; i < k; i++) ids[b * Tn + 1 + i] = done[b] ? o.padId() : drafts[b][i];
            }
            float[] p = f.forward(ids, livePos, liveSlot, false);
            verifySteps++;
            for (int b = 0; b < B; b++) {
                if (done[b]) continue;
                int[] step = SpeculativeSampling.verify(drafts[b], q, (b * Tn + 1) * V, p, b * Tn * V, V, sp, draws[b]);
                sequenceSteps++;
                drafted += k;
                accepted += step.length - 1;
                if (step.length <= k) rejecting++;
                pending[b] = step[step.length - 1];
                pos[b] += step.length;
                slot[b] += step.length;
                int n = emit(out.get(b), step, o, b, done, eos);
                if (o.keepLogits()) keepRows(rows.get(b), p, b * Tn * V, n, V);
            }
            long t2 = System.nanoTime();
            draftNanos += t1 - t0;
            verifyNanos += t2 - t1;
        }
        int[][] tokens = new int[B][];
        for (int b = 0; b < B; b++) tokens[b] = out.get(b).stream().mapToInt(Integer::intValue).toArray();
        float[][][] logits = null;
        if (o.keepLogits()) {
            logits = new float[B][][];
            for (int b = 0; b < B; b++) logits[b] = rows.get(b).toArray(new float[0][]);
        }
        return new Result(new GenerationResult(tokens, eos, logits),
                new SpeculativeStats(verifySteps, sequenceSteps, drafted, accepted, rejecting, draftNanos * 1e-9, verifyNanos * 1e-9));
    }

    /**
     * Appends a step's tokens up to the first EOS or the token budget, marking the sequence done
     * then; returns how many it appended.
     */
    private static int emit(List<Integer> seq, int[] step, Generator.Options o, int b, boolean[] done, boolean[] eos) {
        for (int i = 0; i < step.length; i++) {
            seq.add(step[i]);
            for (int e : o.eosIds()) {
                if (e == step[i]) {
                    eos[b] = true;
                    done[b] = true;
                    return i + 1;
                }
            }
            if (seq.size() >= o.maxNewTokens()) {
                done[b] = true;
                return i + 1;
            }
        }
        return step.length;
    }

    private static void keepRows(List<float[]> kept, float[] logits, int off, int n, int V) {
        for (int i = 0; i < n; i++) kept.add(Arrays.copyOfRange(logits, off + i * V, off + (i + 1) * V));
    }

    private static boolean allTrue(boolean[] a) {
        for (boolean x : a) if (!x) return false;
        return true;
    }

    /**
     * The KV caches of a batch and a forward of Tn new rows per sequence over them: rows
     * b * Tn + t at rotary position pos[b] + t and cache slot slot[b] + t.
     */
    private final class CachedForward {
        final int B, Tn, S, N;
        final Tensor[] kCache, vCache;
        final Tensor cacheMask, zeroSlots, onesTn, slots, positions, ids;
        final Tensor[] rowsAt, slotsAt, offsets;
        final Tensor qRow, attRow, attBySequence, tokenIds, tokenEmb, maskIds, maskEmb, xBySequence;
        final Tensor x, rstd, q, k, v, att, lnf, logits;
        final LlamaModel.LayerBuffers layer;
        /** The draft's and the verification's forwards, recorded once where the backend can. */
        final Runnable draftStep, verifyStep;
        private final TensorSet buffers = new TensorSet(backend);

        CachedForward(int B, int Tn, int S) {
            this.B = B;
            this.Tn = Tn;
            this.S = S;
            this.N = B * Tn;
            int C = config.hiddenSize();
            // the caches and layer buffers of plain decoding, for Tn rows a sequence
            DecodeBuffers d = new DecodeBuffers(buffers, model, B, S, N);
            layer = d.layer;
            kCache = d.kCache;
            vCache = d.vCache;
            x = d.x;
            rstd = d.rstd;
            q = d.q;
            k = d.k;
            v = d.v;
            att = d.att;
            cacheMask = buffers.ints(B, S);
            zeroSlots = buffers.ints(B);
            onesTn = buffers.ints(B, Tn);
            int[] one = new int[B * Tn];
            Arrays.fill(one, 1);
            backend.upload(onesTn, one);
            slots = buffers.ints(B);
            positions = buffers.ints(N);
            ids = buffers.ints(N);
            rowsAt = new Tensor[Tn];
            slotsAt = new Tensor[Tn];
            offsets = new Tensor[Tn];
            for (int t = 0; t < Tn; t++) {
                rowsAt[t] = buffers.ints(B);
                slotsAt[t] = buffers.ints(B);
                offsets[t] = buffers.ints(B);
                int[] r = new int[B], o = new int[B];
                for (int b = 0; b < B; b++) r[b] = b * Tn + t;
                Arrays.fill(o, t);
                backend.upload(rowsAt[t], r);
                backend.upload(offsets[t], o);
            }
            qRow = buffers.activations(B, config.qDim());
            attRow = buffers.activations(B, config.qDim());
            // rows are placed into [B, Tn, .] buffers by kvAppend (slot t of sequence b is row
            // b * Tn + t), then copied whole into att and x: a copy, not gatherRowsBackward's add,
            // which on bf16 buffers goes through an F32 scratch that a recorded step cannot allocate
            attBySequence = buffers.activations(B, Tn, config.qDim());
            xBySequence = buffers.activations(B, Tn, C);
            int m = Tn - 1;
            tokenIds = buffers.ints(B);
            tokenEmb = buffers.activations(B, C);
            maskIds = buffers.ints(B * m);
            maskEmb = buffers.activations(B * m, C);
            int[] mi = new int[B * m];
            for (int b = 0; b < B; b++) for (int i = 0; i < m; i++) mi[b * m + i] = i;
            backend.upload(maskIds, mi);
            lnf = buffers.activations(N, C);
            logits = buffers.floats(N, config.vocabSize());
            Runnable draftForward = () -> forwardOnDevice(true), verifyForward = () -> forwardOnDevice(false);
            draftStep = recordSteps ? backend.capturable(draftForward) : draftForward;
            verifyStep = recordSteps ? backend.capturable(verifyForward) : verifyForward;
        }

        /** One forward over the padded prompts into slots [0, Tp); returns each row's last logits [B, V]. */
        float[] prefill(Batch prompt) {
            int Tp = prompt.time();
            // one layer's buffers, shared by the layers: each layer's keys and values go to the caches right after it
            Activations a = Activations.forPrefill(model, B, Tp);
            Tensor lastRows = buffers.ints(B), last = buffers.floats(B, config.hiddenSize()), lastLogits = buffers.floats(B, config.vocabSize());
            try {
                model.trunk(a, prompt, null, l -> {
                    backend.kvAppend(kCache[l], a.k[l], zeroSlots);
                    backend.kvAppend(vCache[l], a.v[l], zeroSlots);
                });
                backend.kvAppend(cacheMask, a.mask, zeroSlots);
                int[] rows = new int[B];
                for (int b = 0; b < B; b++) rows[b] = b * Tp + Tp - 1;
                backend.upload(lastRows, rows);
                backend.gatherRows(last, a.lnf, lastRows);
            } finally {
                a.free();
            }
            backend.matmul(lastLogits, last, model.parameters().lmHead, null);
            return backend.download(lastLogits);
        }

        /**
         * Tn rows per sequence from ids [B * Tn] at rotary positions pos[b] + t and cache slots
         * slot[b] + t; the draft replaces rows 1..Tn-1 of each sequence by the mask embeddings and
         * skips the draft's layers. Returns the logits [B * Tn, V].
         */
        float[] forward(int[] tokens, int[] pos, int[] slot, boolean isDraft) {
            // the step's inputs, into the buffers the recorded forward reads
            int[] p = new int[N];
            for (int b = 0; b < B; b++) for (int t = 0; t < Tn; t++) p[b * Tn + t] = pos[b] + t;
            backend.upload(positions, p);
            backend.upload(slots, slot);
            int[] s = new int[B];
            for (int t = 0; t < Tn; t++) {
                for (int b = 0; b < B; b++) s[b] = slot[b] + t;
                backend.upload(slotsAt[t], s);
            }
            if (isDraft) {
                int[] tk = new int[B];
                for (int b = 0; b < B; b++) tk[b] = tokens[b * Tn];
                backend.upload(tokenIds, tk);
                draftStep.run();
            } else {
                backend.upload(ids, tokens);
                verifyStep.run();
            }
            return backend.download(logits);
        }

        /**
         * The forward's ops, on buffers allocated up front and the inputs {@link #forward} uploaded:
         * the same ops with the same arguments every step, so that the backend may replay them.
         */
        private void forwardOnDevice(boolean isDraft) {
            backend.kvAppend(cacheMask, onesTn, slots);
            LlamaWeights w = model.parameters();
            if (isDraft) {
                backend.embedding(tokenEmb, tokenIds, w.embed);
                backend.embedding(maskEmb, maskIds, draft.maskEmbeddings());
                // row b * Tn the pending token, rows b * Tn + 1.. the masks
                backend.kvAppend(xBySequence, tokenEmb, offsets[0]);
                backend.kvAppend(xBySequence, maskEmb, offsets[1]);
                backend.copy(x, xBySequence);
            } else {
                backend.embedding(x, ids, w.embed);
            }
            for (int l = 0; l < config.numLayers(); l++) {
                if (isDraft && draft.config().skips(l)) continue;
                final int at = l;
                model.layer(l, layer, positions, () -> attend(at), null, null);
            }
            backend.rmsnorm(lnf, rstd, x, w.finalNorm, config.rmsNormEps());
            backend.matmul(logits, lnf, w.lmHead, null);
        }

        /** Appends the rows' keys and values, then attends each row offset t over slots up to slot + t. */
        private void attend(int l) {
            backend.kvAppend(kCache[l], k, slots);
            backend.kvAppend(vCache[l], v, slots);
            for (int t = 0; t < Tn; t++) {
                backend.gatherRows(qRow, q, rowsAt[t]);
                backend.decodeAttention(attRow, qRow, kCache[l], vCache[l], cacheMask, slotsAt[t],
                        config.numHeads(), config.numKvHeads(), config.slidingWindows()[l]);
                backend.kvAppend(attBySequence, attRow, offsets[t]);
            }
            backend.copy(att, attBySequence);
        }

        void free() {
            if (recordSteps) {
                backend.releaseCaptured(draftStep);
                backend.releaseCaptured(verifyStep);
            }
            buffers.free();
        }
    }
}
