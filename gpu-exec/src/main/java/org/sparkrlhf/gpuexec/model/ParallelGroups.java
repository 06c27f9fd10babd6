package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.parallel.Collective;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;

import java.util.Map;

/**
 * A shard's tensor-parallel group (its rank is the tensor rank) and pipeline group (its rank is the
 * stage), and the communication the model does over them. Every operation is free when its group
 * has one rank, so the whole model (tp = pp = 1) runs the same code without moving any data.
 */
final class ParallelGroups {
    private final Backend backend;
    private final ModelConfig config;
    private final ShardSpec shard;
    final Collective tp, pp;
    final int vocab0, vocab1;

    ParallelGroups(Backend backend, ModelConfig config, ShardSpec shard, Collective tp, Collective pp) {
        if (tp.size() != shard.tp() || tp.rank() != shard.tpRank()) {
            throw new IllegalArgumentException("the tensor-parallel group is rank " + tp.rank() + " of " + tp.size()
                    + ", the shard is " + shard.label());
        }
        if (pp.size() != shard.pp() || pp.rank() != shard.stage()) {
            throw new IllegalArgumentException("the pipeline group is rank " + pp.rank() + " of " + pp.size()
                    + ", the shard is " + shard.label());
        }
        this.backend = backend;
        this.config = config;
        this.shard = shard;
        this.tp = tp;
        this.pp = pp;
        this.vocab0 = shard.partStart(config.vocabSize());
        this.vocab1 = shard.partEnd(config.vocabSize());
    }

    /** t = sum over the tensor-parallel group of t, in place (on GPUs NCCL on the tensor itself). */
    void allReduceTp(Tensor t) {
        if (shard.tp() == 1) return;
        tp.allReduceSum(backend, t);
    }

    /** Sends t to pipeline stage {@code stage}, which receives it with {@link #recvFrom}: a chain, so a send may wait for its receive. */
    void sendTo(int stage, Tensor t) {
        pp.sendTensor(backend, t, stage);
    }

    void recvFrom(int stage, Tensor t) {
        pp.recvTensor(backend, t, stage);
    }

    /**
     * After a backward whose embedding is tied across the first and last stage: each holds the
     * gradient of its own use in {@code own}; both end with {@code sum} = head use + embedding use.
     * The two stages swap {@code own} in one exchange (both send and receive, so neither order can
     * deadlock), straight into {@code sum}, and add their own; other stages do nothing.
     */
    void sumTiedGradients(Tensor own, Tensor sum) {
        int last = shard.pp() - 1, peer;
        if (shard.firstStage()) peer = last;
        else if (shard.stage() == last) peer = 0;
        else return;
        pp.exchangeTensors(backend, Map.of(peer, own), Map.of(peer, sum));
        backend.add(sum, sum, own);
    }

    /** Copies the last stage's values to every stage. */
    float[] broadcastFromLast(float[] values, int length) {
        float[] buf = shard.lastStage() ? values : new float[length];
        if (buf.length != length) throw new IllegalStateException("broadcast of " + buf.length + " values, expected " + length);
        if (shard.pp() > 1) pp.broadcast(buf, shard.pp() - 1);
        return buf;
    }

    /**
     * The values of the last stage's float tensor {@code onLast} (null on the other stages) of
     * {@code length} elements, on every stage: broadcast on the device (through an F32 copy, which
     * every stage can allocate without knowing the last stage's dtype), then downloaded.
     */
    float[] fromLastStage(Tensor onLast, int length) {
        if (shard.pp() == 1) return backend.download(onLast);
        Tensor t = backend.allocate(DType.F32, length);
        try {
            if (shard.lastStage()) {
                if (onLast.numel() != length) {
                    throw new IllegalStateException("broadcast of " + onLast.describe() + ", expected " + length + " values");
                }
                backend.copy(t, onLast);
            }
            pp.broadcast(backend, t, shard.pp() - 1);
            return backend.download(t);
        } finally {
            backend.free(t);
        }
    }

    /**
     * Vocabulary-parallel embedding: out[n] = embed[ids[n]] for the ids in this rank's range, 0
     * for the others, then the all-reduce over the tensor ranks. Returns which ids were in range.
     */
    boolean[] embedTokens(Tensor out, Tensor localIds, int[] ids, Tensor embed) {
        int n = ids.length, V = config.vocabSize();
        int[] local = new int[n];
        boolean[] in = new boolean[n];
        for (int i = 0; i < n; i++) {
            int id = ids[i];
            if (id < 0 || id >= V) throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + V + ")");
            in[i] = id >= vocab0 && id < vocab1;
            local[i] = in[i] ? id - vocab0 : 0;
        }
        backend.upload(localIds, local);
        backend.embedding(out, localIds, embed);
        zeroOutside(out, in);
        allReduceTp(out);
        return in;
    }

    /**
     * Zeroes, on the device, the rows of t [n, C] whose flag is false: those rows are gathered,
     * negated and added back (x + -x is exactly +0, as the host's fill with 0 would be).
     */
    void zeroOutside(Tensor t, boolean[] keep) {
        int k = 0;
        for (boolean b : keep) if (!b) k++;
        if (k == 0) return;
        int[] rows = new int[k];
        for (int i = 0, j = 0; i < keep.length; i++) if (!keep[i]) rows[j++] = i;
        Tensor rowIds = backend.allocate(DType.I32, k);
        Tensor scratch = backend.allocate(DType.F32, k, t.dim(-1));
        try {
            backend.upload(rowIds, rows);
            backend.gatherRows(scratch, t, rowIds);
            backend.scale(scratch, -1f);
            backend.gatherRowsBackward(t, scratch, rowIds);
        } finally {
            backend.free(scratch);
            backend.free(rowIds);
        }
    }

    /** Whether every tensor rank holds as many vocabulary columns: then logits move on the device as [N * tp, V / tp] rows. */
    private boolean evenVocabulary() {
        return config.vocabSize() % shard.tp() == 0;
    }

    /** The row order that interleaves [tp, N, w] blocks into [N, tp, w]: row r * tp + t is row t * N + r. */
    private Tensor interleave(int N) {
        int n = shard.tp();
        int[] rows = new int[N * n];
        for (int r = 0; r < N; r++) for (int t = 0; t < n; t++) rows[r * n + t] = t * N + r;
        Tensor ids = backend.allocate(DType.I32, rows.length);
        backend.upload(ids, rows);
        return ids;
    }

    /**
     * Gathers the vocabulary columns [N, Vt] of every tensor rank into logits [N, V]: an all-gather
     * of the parts as [tp * N, Vt] rows, then one row gather that puts row r of part t at columns
     * t * Vt of row r (logits [N, V] is [N * tp, Vt] in memory). A vocabulary that does not divide
     * evenly goes through the host.
     */
    void gatherLogits(Tensor logits, Tensor localLogits, int N) {
        if (logits == localLogits) return;
        if (!evenVocabulary()) {
            gatherLogitsOnHost(logits, localLogits, N);
            return;
        }
        int w = vocab1 - vocab0;
        Tensor parts = backend.allocate(localLogits.dtype(), shard.tp() * N, w);
        Tensor order = interleave(N);
        try {
            tp.allGather(backend, localLogits, parts);
            backend.gatherRows(logits, parts, order);
        } finally {
            backend.free(order);
            backend.free(parts);
        }
    }

    private void gatherLogitsOnHost(Tensor logits, Tensor localLogits, int N) {
        int V = config.vocabSize(), n = shard.tp();
        int[] offsets = new int[n + 1];
        for (int t = 0; t <= n; t++) offsets[t] = N * ShardSpec.partStart(V, n, t);
        float[] parts = new float[N * V];
        float[] mine = backend.download(localLogits);
        System.arraycopy(mine, 0, parts, offsets[shard.tpRank()], mine.length);
        tp.allGatherParts(parts, offsets);
        float[] full = new float[N * V];
        for (int t = 0; t < n; t++) {
            int v0 = ShardSpec.partStart(V, n, t), w = ShardSpec.partStart(V, n, t + 1) - v0;
            for (int r = 0; r < N; r++) System.arraycopy(parts, offsets[t] + r * w, full, r * V + v0, w);
        }
        backend.upload(logits, full);
    }

    /**
     * This rank's vocabulary columns of dLogits [N, V], into dLocal [N, Vt]: with an even
     * vocabulary, rows r * tp + tpRank of dLogits copied as [N * tp, Vt].
     */
    void sliceLogitGradient(Tensor dLocal, Tensor dLogits, int N) {
        if (dLocal == dLogits) return;
        int V = config.vocabSize(), w = vocab1 - vocab0;
        if (!evenVocabulary()) {
            float[] full = backend.download(dLogits);
            float[] mine = new float[N * w];
            for (int r = 0; r < N; r++) System.arraycopy(full, r * V + vocab0, mine, r * w, w);
            backend.upload(dLocal, mine);
            return;
        }
        int[] rows = new int[N];
        for (int r = 0; r < N; r++) rows[r] = r * shard.tp() + shard.tpRank();
        Tensor asRows = backend.allocate(dLogits.dtype(), N * shard.tp(), w);
        Tensor rowIds = backend.allocate(DType.I32, N);
        try {
            backend.copy(asRows, dLogits);
            backend.upload(rowIds, rows);
            backend.gatherRows(dLocal, asRows, rowIds);
        } finally {
            backend.free(rowIds);
            backend.free(asRows);
        }
    }
}
