package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.gpuexec.model.S3dConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.jobs.config.RunConfig.SpeculativeConfig;
import org.sparkrlhf.jobs.files.HadoopFiles;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The actor's S3D draft on the driver: its mask embeddings ([draftTokens * hidden], a few KB) are
 * small, so the driver owns them like the policy's version: each actor_gen sends them to its ranks,
 * the S3D training after actor_train returns the updated ones, and checkpoints and the final model
 * get them as {@code s3d.safetensors} and {@code s3d.json} in the actor's folder. Until the first
 * generation initialises them on an executor (from the model's embedding scale, with a fixed seed,
 * so every rank draws the same), a run that found none in the actor's folder has none.
 */
public final class SpeculativeDraft {
    private final SpeculativeConfig config;
    private final S3dConfig s3d;
    private float[] values;

    private SpeculativeDraft(SpeculativeConfig config, float[] values) {
        this.config = config;
        this.s3d = new S3dConfig(config.skipFrom(), config.skipTo(), config.draftTokens());
        this.values = values;
    }

    /**
     * The draft of the actor in {@code actorDir} (the config's folder, or the checkpoint's on a
     * resume): its saved mask embeddings when the folder has them for this skip range and draft
     * length, else none yet (initialised by the first generation); says which on {@code progress}.
     */
    public static SpeculativeDraft open(SpeculativeConfig config, Path actorDir, PrintStream progress) {
        String what = String.format("speculative decoding: S3D, layers [%d, %d) skipped, %d draft tokens",
                config.skipFrom(), config.skipTo(), config.draftTokens());
        if (S3dDraft.present(actorDir)) {
            S3dDraft.Saved saved = S3dDraft.read(actorDir);
            SpeculativeDraft d = new SpeculativeDraft(config, saved.values());
            if (saved.config().equals(d.s3d)) {
                progress.printf("%s, mask embeddings from %s%n", what, actorDir.resolve(S3dDraft.WEIGHTS));
                return d;
            }
            progress.printf("%s, mask embeddings freshly initialised (%s holds a draft for layers [%d, %d), %d tokens)%n",
                    what, actorDir.resolve(S3dDraft.CONFIG), saved.config().skipFrom(), saved.config().skipTo(),
                    saved.config().draftTokens());
            return new SpeculativeDraft(config, null);
        }
        progress.printf("%s, mask embeddings freshly initialised (no %s in %s)%n", what, S3dDraft.WEIGHTS, actorDir);
        return new SpeculativeDraft(config, null);
    }

    public SpeculativeConfig config() {
        return config;
    }

    public S3dConfig s3d() {
        return s3d;
    }

    /** The mask embeddings, or null before the first generation initialised them. */
    public synchronized float[] values() {
        return values;
    }

    public synchronized void update(float[] values) {
        this.values = values.clone();
    }

    /** Writes s3d.safetensors and s3d.json into a model folder on any Hadoop file system; nothing before there are embeddings. */
    public synchronized void writeTo(String folder) {
        if (values == null) {
            return;
        }
        try {
            Path tmp = Files.createTempDirectory("s3d-draft");
            try {
                S3dDraft.write(tmp, s3d, values.length / s3d.draftTokens(), values);
                HadoopFiles.upload(tmp.resolve(S3dDraft.WEIGHTS), HadoopFiles.resolve(folder, S3dDraft.WEIGHTS));
                HadoopFiles.upload(tmp.resolve(S3dDraft.CONFIG), HadoopFiles.resolve(folder, S3dDraft.CONFIG));
            } finally {
                Files.deleteIfExists(tmp.resolve(S3dDraft.WEIGHTS));
                Files.deleteIfExists(tmp.resolve(S3dDraft.CONFIG));
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the S3D draft to " + folder + ": " + e.getMessage(), e);
        }
    }
}
