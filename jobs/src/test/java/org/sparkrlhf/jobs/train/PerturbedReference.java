package org.sparkrlhf.jobs.train;

import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.gpuexec.model.LlamaModel;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The tiny fixture model with every parameter scaled by 0.9, as a reference the actor is measurably
 * far from. The tiny random model never earns a reward on its own, so with the unscaled model as its
 * reference an RL run's gradients would be rounding noise, which AdamW scales up to full steps in
 * directions that differ between layouts; against this reference the KL term gives real gradients.
 */
final class PerturbedReference {
    private PerturbedReference() {
    }

    /** Writes the reference to {@code dir}/ref once and returns that folder. */
    static Path under(Path dir) throws Exception {
        Path ref = dir.resolve("ref");
        if (Files.exists(ref)) {
            return ref;
        }
        try (CpuBackend backend = new CpuBackend(); LlamaModel m = LlamaModel.load(backend, SftTrainingTest.TINY_LLAMA)) {
            for (Tensor t : m.parameters().byName().values()) {
                float[] v = backend.download(t);
                for (int i = 0; i < v.length; i++) {
                    v[i] *= 0.9f;
                }
                backend.upload(t, v);
            }
            m.save(ref, StDType.F32, 1L << 30);
        }
        for (String f : List.of("tokenizer.json", "generation_config.json")) {
            Files.copy(SftTrainingTest.TINY_LLAMA.resolve(f), ref.resolve(f));
        }
        return ref;
    }
}
