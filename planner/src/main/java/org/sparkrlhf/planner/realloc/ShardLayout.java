package org.sparkrlhf.planner.realloc;

import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ModelSpec;

/**
 * Which slice of every parameter each device of a layout holds. Pipeline stages own contiguous layer
 * ranges ({@link ParallelStrategy#stageStart}); the embedding lives on the first stage (and, tied to the
 * head, also on the last), the final norm and head on the last. Inside a stage, tensor rank {@code t}
 * holds part {@code t} of {@code tp} balanced ranges of the split dimension; replicated tensors are whole.
 * With ZeRO-3 data rank {@code d} holds part {@code d} of {@code dp} row ranges of every tensor.
 */
public final class ShardLayout {
    private final ModelSpec model;
    private final DeviceMesh mesh;
    private final ParallelStrategy strategy;

    public ShardLayout(ModelSpec model, DeviceMesh mesh, ParallelStrategy strategy) {
        if (strategy.size() != mesh.size()) {
            throw new IllegalArgumentException("strategy " + strategy.label() + " needs " + strategy.size()
                    + " devices, the mesh has " + mesh.size());
        }
        this.model = model;
        this.mesh = mesh;
        this.strategy = strategy;
    }

    public ModelSpec model() {
        return model;
    }

    public DeviceMesh mesh() {
        return mesh;
    }

    public ParallelStrategy strategy() {
        return strategy;
    }

    /** The pipeline stage holding decoder layer {@code layer}. */
    public int stageOfLayer(int layer) {
        if (layer < 0 || layer >= model.layers()) {
            throw new IllegalArgumentException("layer " + layer + " out of range");
        }
        // the largest s with floor(s * L / pp) <= layer
        long pp = strategy.pp();
        long l = model.layers();
        return (int) (((layer + 1) * pp + l - 1) / l - 1);
    }

    /** The pipeline stages holding {@code p}. */
    public int[] stagesHolding(Param p) {
        int last = strategy.pp() - 1;
        if (p.layer() == Param.EMBEDDING) {
            boolean tiedCopy = model.tieEmbeddings() && !model.valueHead() && last > 0;
            return tiedCopy ? new int[]{0, last} : new int[]{0};
        }
        if (p.layer() == Param.FINAL) {
            return new int[]{last};
        }
        return new int[]{stageOfLayer(p.layer())};
    }

    /** Whether pipeline stage {@code stage} holds {@code p}. */
    public boolean stageHolds(Param p, int stage) {
        int last = strategy.pp() - 1;
        if (p.layer() == Param.EMBEDDING) {
            boolean tiedCopy = model.tieEmbeddings() && !model.valueHead() && stage == last;
            return stage == 0 || tiedCopy;
        }
        if (p.layer() == Param.FINAL) {
            return stage == last;
        }
        return stageOfLayer(p.layer()) == stage;
    }

    /** The slice of {@code p} device {@code gpu} holds, or null when it holds none of it. */
    public Slice slice(Param p, int gpu) {
        if (!mesh.contains(gpu)) {
            return null;
        }
        int r = gpu - mesh.first();
        if (!stageHolds(p, strategy.stageOf(r))) {
            return null;
        }
        Slice s;
        if (strategy.zero3()) {
            int d = strategy.dataRankOf(r);
            s = new Slice(Slice.partStart(p.rows(), strategy.dp(), d), Slice.partStart(p.rows(), strategy.dp(), d + 1),
                    0, p.cols());
        } else {
            int t = strategy.tensorRankOf(r);
            int tp = strategy.tp();
            s = switch (p.split()) {
                case ROWS, VOCAB_ROWS -> new Slice(Slice.partStart(p.rows(), tp, t), Slice.partStart(p.rows(), tp, t + 1),
                        0, p.cols());
                case COLUMNS -> new Slice(0, p.rows(), Slice.partStart(p.cols(), tp, t), Slice.partStart(p.cols(), tp, t + 1));
                case REPLICATED -> new Slice(0, p.rows(), 0, p.cols());
            };
        }
        return s.isEmpty() ? null : s;
    }
}
