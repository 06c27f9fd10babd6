package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.gpuexec.model.S3dConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.S3dTrainer;
import org.sparkrlhf.jobs.config.RunConfig.SpeculativeConfig;
import org.sparkrlhf.jobs.files.HadoopFiles;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The actor's S3D draft on the driver: its mask embeddings ([draftTokens * hidden], a few KB) are
 * small, so the driver owns them like the policy's version: each actor_gen sends them to its ranks,
 * the s3d_train call returns the updated ones with its optimizer's moments (also a few KB, kept here
 * so that AdamW continues across iterations), and checkpoints get both as {@code s3d.safetensors},
 * {@code s3d.json} and {@code s3d_optimizer.safetensors} in the actor's folder (the final model the
 * first two). Until the first generation initialises the embeddings on an executor (from the model's
 * embedding scale, with a fixed seed, so every rank draws the same), a run that found none in the
 * actor's folder has none; until the first training, no moments.
 */
public final class SpeculativeDraft {
    private final SpeculativeConfig config;
    private final S3dConfig s3d;
    private float[] values;
    private S3dTrainer.Moments moments;

    /** The mask embeddings and the optimizer's state, each null until there is one. */
    public record State(float[] values, S3dTrainer.Moments moments) {
    }

    private SpeculativeDraft(SpeculativeConfig config, float[] values, S3dTrainer.Moments moments) {
        this.config = config;
        this.s3d = new S3dConfig(config.skipFrom(), config.skipTo(), config.draftTokens());
        this.values = values;
        this.moments = moments;
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
            if (saved.config().equals(new S3dConfig(config.skipFrom(), config.skipTo(), config.draftTokens()))) {
                // a checkpoint's draft continues with its optimizer's moments
                Path optimizer = actorDir.resolve(S3dTrainer.OPTIMIZER);
                S3dTrainer.Moments moments = Files.exists(optimizer)
                        ? S3dTrainer.read(optimizer, config.draftTokens(), saved.hidden()) : null;
                progress.printf("%s, mask embeddings from %s%s%n", what, actorDir.resolve(S3dDraft.WEIGHTS),
                        moments == null ? "" : ", AdamW after " + moments.steps() + " steps");
                return new SpeculativeDraft(config, saved.values(), moments);
            }
            progress.printf("%s, mask embeddings freshly initialised (%s holds a draft for layers [%d, %d), %d tokens)%n",
                    what, actorDir.resolve(S3dDraft.CONFIG), saved.config().skipFrom(), saved.config().skipTo(),
                    saved.config().draftTokens());
            return new SpeculativeDraft(config, null, null);
        }
        progress.printf("%s, mask embeddings freshly initialised (no %s in %s)%n", what, S3dDraft.WEIGHTS, actorDir);
        return new SpeculativeDraft(config, null, null);
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

    /** The embeddings a first generation initialised. */
    public synchronized void update(float[] values) {
        this.values = values.clone();
    }

    /** The embeddings and optimizer state an s3d_train call left. */
    public synchronized void trained(float[] values, S3dTrainer.Moments moments) {
        this.values = values.clone();
        this.moments = moments;
    }

    /** Both, read together. */
    public synchronized State state() {
        return new State(values, moments);
    }

    /** Writes s3d.safetensors and s3d.json into a model folder on any Hadoop file system; nothing before there are embeddings. */
    public void writeTo(String folder) {
        write(folder, false);
    }

    /** {@link #writeTo}, and the optimizer's state ({@code s3d_optimizer.safetensors}) once there is one: a checkpoint's draft. */
    public void writeCheckpointTo(String folder) {
        write(folder, true);
    }

    private synchronized void write(String folder, boolean withOptimizer) {
        if (values == null) {
            return;
        }
        try {
            Path tmp = Files.createTempDirectory("s3d-draft");
            int hidden = values.length / s3d.draftTokens();
            List<String> files = new ArrayList<>(List.of(S3dDraft.WEIGHTS, S3dDraft.CONFIG));
            try {
                S3dDraft.write(tmp, s3d, hidden, values);
                if (withOptimizer && moments != null) {
                    S3dTrainer.write(moments, s3d.draftTokens(), hidden, AdamW.Hyper.defaults((float) config.trainLr()),
                            tmp.resolve(S3dTrainer.OPTIMIZER));
                    files.add(S3dTrainer.OPTIMIZER);
                }
                for (String f : files) {
                    HadoopFiles.upload(tmp.resolve(f), HadoopFiles.resolve(folder, f));
                }
            } finally {
                for (String f : files) {
                    Files.deleteIfExists(tmp.resolve(f));
                }
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the S3D draft to " + folder + ": " + e.getMessage(), e);
        }
    }
}
