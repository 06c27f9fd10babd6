package org.sparkrlhf.jobs.files;

import org.apache.hadoop.fs.FileStatus;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Model folders on local disk, for the engine's readers (which read local files): a local folder
 * is itself; a folder on another file system (s3a://, abfss://, dbfs:/ ...) is copied once into
 * this machine's cache and read from there.
 *
 * <p>A copy is keyed by the folder's path and the name, length and modification time of each of
 * its files, so a folder rewritten under the same name (a checkpoint set aside and written
 * again) is copied anew, and one unchanged is copied once per machine, however many tasks and
 * executors ask. Two tasks of one JVM asking at once wait for one copy; two JVMs on one machine
 * each copy into a folder of their own and move it into place, the first move winning, so a
 * reader never sees a copy cut short.
 *
 * <p>The cache lives under {@code spark.rlhf.modelCache.dir} (a Spark conf), by default
 * {@code <java.io.tmpdir>/spark-rlhf-models}; copies are not removed while the JVM runs.
 */
public final class ModelCache {
    /** The Spark conf naming the cache's folder. */
    public static final String DIR_CONF = "spark.rlhf.modelCache.dir";
    private static final Map<String, Object> LOCKS = new ConcurrentHashMap<>();

    private ModelCache() {
    }

    /** {@code folder} as a local folder: itself when local, else its copy in this machine's cache. */
    public static Path local(String folder) {
        if (HadoopFiles.isLocal(folder)) {
            return HadoopFiles.localPath(folder);
        }
        String qualified = HadoopFiles.qualified(folder);
        Map<String, FileStatus> files = HadoopFiles.files(qualified);
        if (files.isEmpty()) {
            throw new IllegalArgumentException(folder + ": no such model folder (or it is empty)");
        }
        String key = key(qualified, files);
        Path target = root().resolve(key);
        synchronized (LOCKS.computeIfAbsent(key, k -> new Object())) {
            if (Files.isDirectory(target)) {
                return target;
            }
            Path partial = root().resolve(key + ".partial-" + UUID.randomUUID());
            try {
                for (String name : files.keySet()) {
                    Path to = partial.resolve(name);
                    Files.createDirectories(to.getParent());
                    HadoopFiles.download(HadoopFiles.resolve(qualified, name), to);
                }
                try {
                    Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE);
                } catch (IOException e) {
                    // another executor on this machine moved its copy first
                    if (!Files.isDirectory(target)) {
                        throw e;
                    }
                    deleteQuietly(partial);
                }
                return target;
            } catch (IOException | RuntimeException e) {
                deleteQuietly(partial);
                throw new UncheckedIOException("cannot copy model folder " + folder + " to " + partial + ": "
                        + e.getMessage(), e instanceof IOException io ? io : new IOException(e));
            }
        }
    }

    private static Path root() {
        // the application's conf; before Spark starts (the driver's checks), spark-submit's system properties
        SparkEnv env = SparkEnv.get();
        String dir = (env != null ? env.conf() : new SparkConf()).get(DIR_CONF, null);
        Path root = dir != null ? Path.of(dir) : Path.of(System.getProperty("java.io.tmpdir"), "spark-rlhf-models");
        try {
            return Files.createDirectories(root);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the model cache " + root + ": " + e.getMessage(), e);
        }
    }

    /** The folder's last name and a digest of its path and files (name, length, modification time). */
    static String key(String qualified, Map<String, FileStatus> files) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(qualified.getBytes(StandardCharsets.UTF_8));
            for (Map.Entry<String, FileStatus> e : files.entrySet()) {
                sha.update(("\n" + e.getKey() + " " + e.getValue().getLen() + " " + e.getValue().getModificationTime())
                        .getBytes(StandardCharsets.UTF_8));
            }
            String name = new org.apache.hadoop.fs.Path(qualified).getName().replaceAll("[^A-Za-z0-9._-]", "_");
            return name + "-" + HexFormat.of().formatHex(sha.digest(), 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void deleteQuietly(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (var walk = Files.walk(dir)) {
            for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // a leftover partial copy is never read: only moved-into-place copies are
        }
    }
}
