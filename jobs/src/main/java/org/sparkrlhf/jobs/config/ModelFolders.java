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
 * folders are read where the executors read them today: a local path ({@link ModelSource}).
 */
public final class ModelFolders {
    private ModelFolders() {
    }

    /** Checks every model folder of {@code config}; a {@link ConfigException} names the role, the file and the tensor or field. */
    public static void check(RunConfig config) {
        for (ModelConfig model : config.models().values()) {
            String where = config.source() + ": models." + model.role() + ".path: ";
            try {
                ModelFolderCheck.check(new ModelSource(model.path(), 0).localPath(), use(model.role()),
                        tokenizer(model.role()));
            } catch (CheckpointException | UnsupportedOperationException e) {
                throw new ConfigException(where + e.getMessage(), e);
            }
        }
    }

    /** How the run loads a role: the critic gets a value head, the reward model keeps its score head. */
    static Use use(String role) {
        return switch (role) {
            case "actor", "ref" -> Use.CAUSAL_LM;
            case "critic" -> Use.VALUE;
            case "reward" -> Use.SCORE;
            default -> throw new IllegalArgumentException("unknown model role '" + role + "'");
        };
    }

    /** The driver tokenizes prompts and decodes responses with the actor's tokenizer; the other roles read its tokens. */
    static boolean tokenizer(String role) {
        return role.equals("actor");
    }
}
