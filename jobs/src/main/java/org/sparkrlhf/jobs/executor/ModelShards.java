package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.SftTrainCall;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.plan.Placement;

import java.util.Map;

/**
 * The model object a rank builds from its slices of the parameters: on a single-rank layout of the
 * model (tp = pp = 1, a data-parallel replica) the engine's whole {@link LlamaModel}.
 */
public final class ModelShards {
    private ModelShards() {
    }

    /**
     * The rank's model from its slices ({@code tensors}: HF name to row-major slice), with a fresh
     * optimizer when {@code optimizer} is given (a trained copy whose optimizer state starts here).
     */
    public static ResidentModel build(ModelSource source, Placement placement, int rank, long version,
                                      Map<String, float[]> tensors, OptimizerConfig optimizer) {
        ModelConfig config = ModelConfig.read(source.localPath().resolve("config.json"));
        if (placement.tp() != 1 || placement.pp() != 1) {
            throw new UnsupportedOperationException(placement.call() + ": tp = " + placement.tp() + ", pp = "
                    + placement.pp() + ": computing with tensor or pipeline shards needs the engine's sharded model");
        }
        LlamaModel model = LlamaModel.random(new CpuBackend(), config, DType.F32, 0, 0f);
        LlamaWeights params = model.parameters();
        for (LlamaWeights.Spec s : params.specs()) {
            float[] values = tensors.get(s.name());
            if (values == null) {
                model.close();
                throw new IllegalStateException(placement.call() + " rank " + rank + ": no slice of " + s.name());
            }
            if (values.length != params.get(s.name()).numel()) {
                model.close();
                throw new IllegalStateException(placement.call() + " rank " + rank + ": " + s.name() + " has "
                        + values.length + " elements, the model needs " + params.get(s.name()).numel());
            }
            model.backend().upload(params.get(s.name()), values);
        }
        AdamW adamW = optimizer == null ? null : AdamW.forModel(model, SftTrainCall.hyper(optimizer));
        return new ResidentModel(model, adamW, version);
    }
}
