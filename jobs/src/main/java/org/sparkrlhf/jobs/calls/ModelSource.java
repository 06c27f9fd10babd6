package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.files.ModelCache;

import java.io.Serializable;
import java.nio.file.Path;

/**
 * Where an executor reloads a model from when its store does not hold it: an HF checkpoint folder
 * on any Hadoop file system ({@code file:}, {@code s3a://}, {@code dbfs:/}, ...) holding parameter
 * version {@code version} (the initial model is version 0).
 */
public record ModelSource(String path, long version) implements Serializable {
    /** The folder on this machine's disk: itself when local, else its copy in the model cache ({@link ModelCache}). */
    public Path localPath() {
        return ModelCache.local(path);
    }
}
