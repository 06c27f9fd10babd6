package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.parallel.Collective;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;

import java.util.Arrays;

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

    /** t = sum over the tensor-parallel group of t. */
    void allReduceTp(Tensor t) {
        if (shard.tp() == 1) return;
        float[] v = backend.download(t);
        tp.allReduceSum(v);
        backend.upload(t, v);
    }

    void sendTo(int stage, Tensor t) {
        float[] v = backend.download(t);
        pp.sendFloats(stage, v, 0, v.length);
    }

    void recvFrom(int stage, Tensor t) {
        float[] v = new float[Math.toIntExact(t.numel())];
        pp.recvFloats(stage, v, 0, v.length);
        backend.upload(t, v);
    }

    /** Copies the last stage's values to every stage. */
    float[] broadcastFromLast(float[] values, int length) {
        float[] buf = shard.lastStage() ? values : new float[length];
        if (buf.length != length) throw new IllegalStateException("broadcast of " + buf.length + " values, expected " + length);
        if (shard.pp() > 1) pp.broadcast(buf, shard.pp() - 1);
        return buf;
    }

    /**
     * Vocabulary-parallel embedding: out[n] = embed[ids[n]] for the ids in this rank's range, 0
     * for the others, then the all-reduce over the tensor ranks. Returns which ids were in range.
     */
    boolean[] embedTokens(Tensor out, Tensor localIds, int[] ids, Tensor embed) {
        int n = ids.length, V = config.vocabSize();
        int[] local = new int[n];
        boolean[] in = new boolean[n];
        boolean all = true;
        for (int i = 0; i < n; i++) {
            int id = ids[i];
            if (id < 0 || id >= V) throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + V + ")");
            in[i] = id >= vocab0 && id < vocab1;
            local[i] = in[i] ? id - vocab0 : 0;
            all &= in[i];
        }
        backend.upload(localIds, local);
        backend.embedding(out, localIds, embed);
        if (!all || shard.tp() > 1) {
            float[] x = backend.download(out);
            zeroOutside(x, in, config.hiddenSize());
            tp.allReduceSum(x);
            backend.upload(out, x);
        }
        return in;
    }

    /** Zeroes the rows of x [n, C] whose flag is false. */
    static void zeroOutside(float[] x, boolean[] keep, int C) {
        for (int i = 0; i < keep.length; i++) if (!keep[i]) Arrays.fill(x, i * C, (i + 1) * C, 0f);
    }

    /** Gathers the vocabulary columns [N, Vt] of every tensor rank into logits [N, V]. */
    void gatherLogits(Tensor logits, Tensor localLogits, int N) {
        if (logits == localLogits) return;
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

    /** This rank's vocabulary columns of dLogits [N, V], into dLocal [N, Vt]. */
    void sliceLogitGradient(Tensor dLocal, Tensor dLogits, int N) {
        if (dLocal == dLogits) return;
        int V = config.vocabSize(), w = vocab1 - vocab0;
        float[] full = backend.download(dLogits);
        float[] mine = new float[N * w];
        for (int r = 0; r < N; r++) System.arraycopy(full, r * V + vocab0, mine, r * w, w);
        backend.upload(dLocal, mine);
    }
}
