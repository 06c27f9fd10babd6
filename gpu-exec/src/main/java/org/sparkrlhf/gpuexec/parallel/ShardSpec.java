package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.model.ModelConfig;

/**
 * Which part of a model one rank holds: tensor rank {@code tpRank} of {@code tp} inside pipeline
 * stage {@code stage} of {@code pp}. The planner's layout (ShardLayout) is followed exactly, so
 * parameter reallocation can move the slices it defines: stage s holds decoder layers
 * [floor(s L / pp), floor((s + 1) L / pp)); the embedding lives on stage 0 (and a tied copy on the
 * last stage of a causal LM with tied embeddings), the final norm and head on the last stage;
 * split tensors are cut into tp balanced ranges [n t / tp, n (t + 1) / tp).
 */
public record ShardSpec(int tp, int tpRank, int pp, int stage) {
    public ShardSpec {
        if (tp < 1 || pp < 1) throw new IllegalArgumentException("tp and pp must be >= 1, got tp " + tp + ", pp " + pp);
        if (tpRank < 0 || tpRank >= tp) throw new IllegalArgumentException("tensor rank " + tpRank + " outside [0, " + tp + ")");
        if (stage < 0 || stage >= pp) throw new IllegalArgumentException("stage " + stage + " outside [0, " + pp + ")");
    }

    /** The unsharded model. */
    public static final ShardSpec WHOLE = new ShardSpec(1, 0, 1, 0);

    /**
     * The shard of local rank r of a dp x tp x pp call mesh: tensor rank r % tp, data rank
     * (r / tp) % dp, stage r / (dp tp).
     */
    public static ShardSpec ofLocalRank(int localRank, int dp, int tp, int pp) {
        if (dp < 1) throw new IllegalArgumentException("dp must be >= 1, got " + dp);
        if (localRank < 0 || localRank >= dp * tp * pp) {
            throw new IllegalArgumentException("local rank " + localRank + " outside a mesh of " + dp + " x " + tp + " x " + pp);
        }
        return new ShardSpec(tp, localRank % tp, pp, localRank / (dp * tp));
    }

    /** The data rank of local rank r: (r / tp) % dp. */
    public static int dataRankOf(int localRank, int dp, int tp) {
        return (localRank / tp) % dp;
    }

    /** Part {@code i} of {@code n} balanced contiguous ranges of [0, total): its start. */
    public static int partStart(int total, int n, int i) {
        return (int) ((long) total * i / n);
    }

    /** The first decoder layer of stage s. */
    public static int stageStart(int layers, int pp, int s) {
        return (int) ((long) s * layers / pp);
    }

    public int firstLayer(int layers) {
        return stageStart(layers, pp, stage);
    }

    /** One past the last layer of this stage. */
    public int endLayer(int layers) {
        return stageStart(layers, pp, stage + 1);
    }

    public boolean firstStage() {
        return stage == 0;
    }

    public boolean lastStage() {
        return stage == pp - 1;
    }

    /** This rank's range [start, end) of a dimension of size n split over tp. */
    public int partStart(int n) {
        return partStart(n, tp, tpRank);
    }

    public int partEnd(int n) {
        return partStart(n, tp, tpRank + 1);
    }

    /** Whether this stage holds model.embed_tokens.weight (stage 0, or the tied copy on the last stage). */
    public boolean holdsEmbedding(ModelConfig c) {
        return firstStage() || (lastStage() && tiedHead(c));
    }

    /** Whether the LM head of this model is the embedding (tied, causal LM). */
    public static boolean tiedHead(ModelConfig c) {
        return c.head() == ModelConfig.Head.CAUSAL_LM && c.tieWordEmbeddings();
    }

    /** Whether the embedding has two copies (stage 0 and the last stage) whose gradients must be summed. */
    public boolean tiedAcrossStages(ModelConfig c) {
        return pp > 1 && tiedHead(c);
    }

    public String label() {
        return "tp " + tpRank + "/" + tp + ", stage " + stage + "/" + pp;
    }
}
