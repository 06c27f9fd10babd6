package org.sparkrlhf.jobs.config;

import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.model.ModelFolderCheck;
import org.sparkrlhf.gpuexec.model.ModelFolderCheck.Use;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig.ModelConfig;

/**
 * The model folders of a run, checked on the driver before the first stage: each role's folder as
 * the run loads it ({@link ModelFolderCheck}), so that a folder cut short or a tensor that does not
 * match its config is an error naming the file, not a failed barrier stage on the executors. The
 * folders are read as the executors read them ({@link ModelSource}): a folder on a remote file
 * system is checked in the driver's copy of it, which the driver's own reads then use.
 */
public final class ModelFolders {
    private ModelFolders() {
    }

    /** Checks every model folder of {@code config}; a {@link ConfigException} names the role, the file and the tensor or field. */
    public static void check(RunConfig config) {
        for (ModelConfig model : config.models().values()) {
            String where = config.source() + ": models." + model.role() + ".path: ";
            try {
                ModelFolderCheck.check(new ModelSource(model.path(), 0).localPath(),
                        use(model.role(), config.algorithm()), tokenizer(model.role(), config.algorithm()));
            } catch (CheckpointException | java.io.UncheckedIOException | IllegalArgumentException e) {
                throw new ConfigException(where + e.getMessage(), e);
            }
        }
    }

    /**
     * How the run loads a role: the critic gets a value head, the reward model keeps its score head;
     * the reward model that RW trains may also start from a causal LM, which gets a fresh score head.
     */
    static Use use(String role, Algorithm algorithm) {
        return switch (role) {
            case "actor", "ref" -> Use.CAUSAL_LM;
            case "critic" -> Use.VALUE;
            case "reward" -> algorithm == Algorithm.RW ? Use.VALUE : Use.SCORE;
            default -> throw new IllegalArgumentException("unknown model role '" + role + "'");
        };
    }

    /**
     * The driver tokenizes prompts and decodes responses with the trained model's tokenizer (the
     * actor's; RW's reward model's); the other roles read its tokens.
     */
    static boolean tokenizer(String role, Algorithm algorithm) {
        return role.equals(algorithm.trainedRole());
    }
}
