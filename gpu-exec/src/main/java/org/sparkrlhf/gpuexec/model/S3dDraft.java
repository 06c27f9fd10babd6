package org.sparkrlhf.gpuexec.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.checkpoint.AtomicFiles;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsWriter;
import org.sparkrlhf.gpuexec.checkpoint.StDType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The parameters S3D adds to a model: one embedding vector per mask token ([draftTokens, C], F32),
 * mask i standing at draft offset i + 1. They live beside the checkpoint in {@value #WEIGHTS} and
 * {@value #CONFIG}, so the model folder's own files stay what transformers loads, unchanged.
 */
public final class S3dDraft implements AutoCloseable {
    public static final String WEIGHTS = "s3d.safetensors";
    public static final String CONFIG = "s3d.json";
    static final String TENSOR = "s3d.mask_embeddings";

    private final Backend backend;
    private final S3dConfig config;
    private final int hidden;
    private final Tensor maskEmbeddings;

    private S3dDraft(Backend backend, S3dConfig config, int hidden, float[] values) {
        this.backend = backend;
        this.config = config;
        this.hidden = hidden;
        this.maskEmbeddings = backend.allocate(DType.F32, config.draftTokens(), hidden);
        backend.upload(maskEmbeddings, values);
    }

    /**
     * Untrained mask embeddings for a model: normal vectors scaled to the root-mean-square of the
     * model's token embeddings, so a mask enters the layers at a token's scale.
     */
    public static S3dDraft initial(LlamaModel model, S3dConfig config, long seed) {
        model.requireWhole("S3D's draft");
        config.check(model.config().numLayers());
        int C = model.config().hiddenSize();
        float[] embed = model.backend().download(model.parameters().embed);
        double sq = 0;
        for (float e : embed) sq += (double) e * e;
        double rms = Math.sqrt(sq / embed.length);
        SplittableRandom rng = new SplittableRandom(seed);
        float[] v = new float[config.draftTokens() * C];
        for (int i = 0; i < v.length; i++) {
            double u1 = 1.0 - rng.nextDouble(), u2 = rng.nextDouble();
            v[i] = (float) (rms * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
        }
        return new S3dDraft(model.backend(), config, C, v);
    }

    /** Mask embeddings given as values ([draftTokens * C], row-major), as {@link #values} returns them. */
    public static S3dDraft of(LlamaModel model, S3dConfig config, float[] values) {
        config.check(model.config().numLayers());
        int C = model.config().hiddenSize();
        if (values.length != config.draftTokens() * C) {
            throw new IllegalArgumentException(values.length + " mask embedding values for " + config.draftTokens() + " x " + C);
        }
        return new S3dDraft(model.backend(), config, C, values);
    }

    /** The mask embeddings' values ([draftTokens * C], row-major). */
    public float[] values() {
        return backend.download(maskEmbeddings);
    }

    /** A folder's saved draft: its config and mask embedding values, as {@link #write} wrote them. */
    public record Saved(S3dConfig config, int hidden, float[] values) {
    }

    /** Reads s3d.json and s3d.safetensors of a folder (no model needed; {@link #load} checks them against one). */
    public static Saved read(Path dir) {
        Path json = dir.resolve(CONFIG);
        S3dConfig config;
        try {
            JsonNode root = new ObjectMapper().readTree(json.toFile());
            config = new S3dConfig(field(root, "skip_from", json), field(root, "skip_to", json), field(root, "draft_tokens", json));
        } catch (IOException e) {
            throw new CheckpointException(json + ": cannot read the S3D config: " + e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new CheckpointException(json + ": " + e.getMessage(), e);
        }
        SafeTensorsFile f = SafeTensorsFile.open(dir.resolve(WEIGHTS));
        int[] shape = f.entry(TENSOR).shape();
        if (shape.length != 2 || shape[0] != config.draftTokens()) {
            throw new CheckpointException(dir.resolve(WEIGHTS) + ": tensor '" + TENSOR + "' has shape " + java.util.Arrays.toString(shape)
                    + ", expected [" + config.draftTokens() + ", hidden]");
        }
        return new Saved(config, shape[1], f.readFloats(TENSOR));
    }

    /** Whether a model folder holds S3D mask embeddings. */
    public static boolean present(Path dir) {
        return Files.exists(dir.resolve(WEIGHTS)) && Files.exists(dir.resolve(CONFIG));
    }

    /** Loads the mask embeddings saved in a model folder for this model. */
    public static S3dDraft load(LlamaModel model, Path dir) {
        Saved saved = read(dir);
        saved.config().check(model.config().numLayers());
        int C = model.config().hiddenSize();
        if (saved.hidden() != C) {
            throw new CheckpointException(dir.resolve(WEIGHTS) + ": tensor '" + TENSOR + "' has shape [" + saved.config().draftTokens()
                    + ", " + saved.hidden() + "], expected [" + saved.config().draftTokens() + ", " + C + "]");
        }
        return new S3dDraft(model.backend(), saved.config(), C, saved.values());
    }

    private static int field(JsonNode root, String name, Path file) {
        JsonNode n = root.get(name);
        if (n == null || !n.isInt()) throw new CheckpointException(file + ": field '" + name + "' must be an integer");
        return n.intValue();
    }

    /** Writes s3d.safetensors and s3d.json into a model folder (the model's own files are not touched). */
    public void save(Path dir) {
        write(dir, config, hidden, values());
    }

    /** Writes a draft's files from its values ([draftTokens * hidden]), as {@link #save} does. */
    public static void write(Path dir, S3dConfig config, int hidden, float[] values) {
        int[] shape = {config.draftTokens(), hidden};
        SafeTensorsWriter.write(dir.resolve(WEIGHTS),
                List.of(SafeTensorsWriter.Item.floats(TENSOR, StDType.F32, shape, () -> values)),
                Map.of("s3d_skip_from", Integer.toString(config.skipFrom()), "s3d_skip_to", Integer.toString(config.skipTo())));
        ObjectNode root = new ObjectMapper().createObjectNode();
        root.put("skip_from", config.skipFrom());
        root.put("skip_to", config.skipTo());
        root.put("draft_tokens", config.draftTokens());
        try {
            AtomicFiles.writeString(dir.resolve(CONFIG), new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsString(root) + "\n");
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    public S3dConfig config() {
        return config;
    }

    /** The mask embeddings [draftTokens, C] (F32; S3D's training updates them in place). */
    public Tensor maskEmbeddings() {
        return maskEmbeddings;
    }

    @Override
    public void close() {
        backend.free(maskEmbeddings);
    }
}
