package org.sparkrlhf.jobs.calls;

import java.io.Serializable;
import java.net.URI;
import java.nio.file.Path;

/**
 * Where an executor reloads a model from when its store does not hold it: a local HF checkpoint
 * folder holding parameter version {@code version} (the initial model is version 0). Remote paths
 * (s3a://, dbfs:/) are not read by executors yet.
 */
public record ModelSource(String path, long version) implements Serializable {
    public Path localPath() {
        URI uri = URI.create(path.replace(" ", "%20"));
        if (uri.getScheme() == null) {
            return Path.of(path);
        }
        if (uri.getScheme().equals("file")) {
            return Path.of(uri);
        }
        throw new UnsupportedOperationException("executors load models from local folders only, not " + path
                + " (copy the checkpoint to the executors' local disk)");
    }
}
