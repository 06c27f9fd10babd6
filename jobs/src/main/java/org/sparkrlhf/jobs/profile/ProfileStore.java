package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.gpuexec.profile.EngineProfiler;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.cost.RuntimeCosts;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;

/**
 * Where profile tables live: next to a run's output ({@code <output>/profile/<model>-<device>.csv},
 * with the measured runtime costs in {@code <model>-<device>.costs}), and in a cache on the driver
 * keyed by model, device, engine version and costs format, so that another run of the same model on the same
 * hardware plans with it without profiling again. The cache key also holds a digest of the model's
 * config.json: two checkpoints both called {@code final} are different models. The cache folder is
 * {@value #CACHE_PROPERTY} (a system property or environment variable {@code SPARK_RLHF_PROFILE_CACHE}),
 * by default {@code ~/.cache/spark-rlhf/profiles}.
 */
public final class ProfileStore {
    public static final String CACHE_PROPERTY = "spark.rlhf.profileCache";

    /** The table (its CSV lines, checked) and the costs found for one model. */
    public record Found(List<String> tableLines, RuntimeCosts costs, String source) {
    }

    private ProfileStore() {
    }

    public static Path cacheDir() {
        String dir = System.getProperty(CACHE_PROPERTY, System.getenv("SPARK_RLHF_PROFILE_CACHE"));
        if (dir != null && !dir.isBlank()) {
            return Path.of(dir);
        }
        return Path.of(System.getProperty("user.home"), ".cache", "spark-rlhf", "profiles");
    }

    /** The file name stem of a model's profile on a device, in the run's output. */
    static String outputStem(String output, String model, String device) {
        return HadoopFiles.resolve(HadoopFiles.resolve(output, "profile"), safe(model) + "-" + safe(device));
    }

    /** The stem in the cache: engine version and costs format / device / model-digest. */
    static Path cacheStem(String model, String device, byte[] configJson) {
        return cacheDir().resolve("engine-" + EngineProfiler.VERSION + "-costs-" + RuntimeCosts.FORMAT).resolve(safe(device))
                .resolve(safe(model) + "-" + digest(configJson));
    }

    /** Writes a profile next to the run's output and into the cache; returns the output's CSV path. */
    public static String store(String output, String model, String device, byte[] configJson, String csv,
                               RuntimeCosts costs) {
        String stored = storeInOutput(output, model, device, csv, costs);
        String cache = cacheStem(model, device, configJson).toUri().toString();
        HadoopFiles.write(cache + ".csv", csv.getBytes(StandardCharsets.UTF_8));
        HadoopFiles.write(cache + ".costs", costs.format().getBytes(StandardCharsets.UTF_8));
        return stored;
    }

    /** Writes a profile next to the run's output only (the cache keeps the profiling application's); returns the CSV path. */
    public static String storeInOutput(String output, String model, String device, String csv, RuntimeCosts costs) {
        String stem = outputStem(output, model, device);
        HadoopFiles.write(stem + ".csv", csv.getBytes(StandardCharsets.UTF_8));
        HadoopFiles.write(stem + ".costs", costs.format().getBytes(StandardCharsets.UTF_8));
        return stem + ".csv";
    }

    /**
     * The profile of a model on a device: the run's own (under its output) when there is one, else the
     * cache's for this engine version and exactly this config.json; empty when neither exists.
     */
    public static Optional<Found> find(String output, String model, String device, byte[] configJson) {
        List<String> stems = output == null ? List.of(cacheStem(model, device, configJson).toUri().toString())
                : List.of(outputStem(HadoopFiles.qualified(output), model, device),
                cacheStem(model, device, configJson).toUri().toString());
        for (String stem : stems) {
            if (HadoopFiles.exists(stem + ".csv") && HadoopFiles.exists(stem + ".costs")) {
                List<String> table = lines(stem + ".csv");
                // a bad file is an error naming it here, not when the plan reads it
                ProfileTable.empty().read(stem + ".csv", table);
                RuntimeCosts costs = RuntimeCosts.parse(stem + ".costs", lines(stem + ".costs"));
                return Optional.of(new Found(table, costs, stem + ".csv"));
            }
        }
        return Optional.empty();
    }

    private static List<String> lines(String file) {
        return Arrays.asList(new String(HadoopFiles.read(file), StandardCharsets.UTF_8).split("\r?\n"));
    }

    private static String safe(String name) {
        return name.replaceAll("[^A-Za-z0-9._-]", "_");
    }

    private static String digest(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)).substring(0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
