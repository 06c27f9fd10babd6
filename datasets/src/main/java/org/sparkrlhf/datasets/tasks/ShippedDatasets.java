package org.sparkrlhf.datasets.tasks;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * The datasets shipped in this jar (under {@code sparkrlhf/datasets/}), made by the generators;
 * datasets/README.md has the commands:
 * {@code arithmetic/train.jsonl}, {@code arithmetic/heldout.jsonl}, {@code digit-sort/train.jsonl},
 * {@code digit-sort/heldout.jsonl} (prompt datasets) and {@code group-preferences/pairs.jsonl}
 * (preference pairs with groups).
 */
public final class ShippedDatasets {
    private ShippedDatasets() {
    }

    public static final List<String> NAMES = List.of("arithmetic/train.jsonl", "arithmetic/heldout.jsonl",
            "digit-sort/train.jsonl", "digit-sort/heldout.jsonl", "group-preferences/pairs.jsonl");

    public static InputStream open(String name) {
        InputStream in = ShippedDatasets.class.getResourceAsStream("/sparkrlhf/datasets/" + name);
        if (in == null) throw new IllegalArgumentException("no shipped dataset " + name + "; they are " + NAMES);
        return in;
    }

    /** Copies a shipped dataset to a file in {@code dir} (Spark reads files, not jar entries); returns it. */
    public static Path copyTo(String name, Path dir) {
        Path file = dir.resolve(name.replace('/', '-'));
        try (InputStream in = open(name)) {
            Files.createDirectories(dir);
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot copy shipped dataset " + name + " to " + dir, e);
        }
    }
}
