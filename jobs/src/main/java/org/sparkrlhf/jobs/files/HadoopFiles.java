package org.sparkrlhf.jobs.files;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import org.apache.spark.deploy.SparkHadoopUtil;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The run's files on any Hadoop FileSystem ({@code file:}, {@code hdfs://}, {@code s3a://},
 * {@code abfss://}, {@code gs://}, {@code dbfs:/}): the one place that turns a config's path into
 * reads and writes, on the driver and on executors alike. A path without a scheme is a local one.
 *
 * <p>The Hadoop configuration is the running Spark application's ({@code spark.hadoop.*} confs
 * and the platform's core-site), as Spark's own readers see it: on the driver and on executors
 * through {@link SparkEnv}; before Spark starts, from the {@code spark.*} system properties that
 * spark-submit sets.
 */
public final class HadoopFiles {
    /** Schemes whose directory rename is atomic; on the others (object stores) a rename is a copy. */
    private static final Set<String> ATOMIC_RENAME = Set.of("file", "hdfs", "viewfs");

    /** The configuration made for the SparkConf it was made from (a new one parses Hadoop's XML files). */
    private record Made(SparkConf from, Configuration conf) {
    }

    private static volatile Made made;

    private HadoopFiles() {
    }

    /** The Hadoop configuration of this JVM's Spark application (see the class comment). */
    public static Configuration conf() {
        SparkEnv env = SparkEnv.get();
        SparkConf spark = env != null ? env.conf() : null;
        Made m = made;
        if (m != null && spark != null && m.from() == spark) {
            return m.conf();
        }
        Configuration conf = SparkHadoopUtil.get().newConfiguration(spark != null ? spark : new SparkConf());
        if (spark != null) {
            made = new Made(spark, conf);
        }
        return conf;
    }

    /** True for a path without a scheme or with {@code file:}. */
    public static boolean isLocal(String path) {
        String scheme = new Path(path).toUri().getScheme();
        return scheme == null || scheme.equals("file");
    }

    /** A local path ({@link #isLocal}) as a java.nio path. */
    public static java.nio.file.Path localPath(String path) {
        if (!isLocal(path)) {
            throw new IllegalArgumentException(path + " is not on the local file system");
        }
        URI uri = new Path(path).toUri();
        return java.nio.file.Path.of(uri.getPath());
    }

    public static FileSystem fileSystem(String path) {
        try {
            return new Path(path).getFileSystem(conf());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the file system of " + path + ": " + e.getMessage(), e);
        }
    }

    /** {@code path} with its scheme and authority (a local one made absolute), as a URI string. */
    public static String qualified(String path) {
        return fileSystem(path).makeQualified(new Path(path)).toString();
    }

    /** {@code dir/child}; {@code child} may hold several names separated by '/'. */
    public static String resolve(String dir, String child) {
        return new Path(new Path(dir), child).toString();
    }

    /**
     * Whether renaming a folder on {@code fs} is atomic (local disks, HDFS). On the object stores
     * it is a copy of every file, which a kill can cut short, so a folder is committed there in
     * place instead (its files first, a marker last).
     */
    public static boolean atomicRename(FileSystem fs) {
        return ATOMIC_RENAME.contains(fs.getUri().getScheme());
    }

    public static boolean exists(String path) {
        try {
            return fileSystem(path).exists(new Path(path));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot look up " + path + ": " + e.getMessage(), e);
        }
    }

    public static void mkdirs(String dir) {
        try {
            fileSystem(dir).mkdirs(new Path(dir));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Removes {@code path} and everything under it; nothing when it is absent. */
    public static void delete(String path) {
        try {
            fileSystem(path).delete(new Path(path), true);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete " + path + ": " + e.getMessage(), e);
        }
    }

    /** Renames {@code from} to {@code to} (which must not exist). */
    public static void rename(String from, String to) {
        try {
            if (!fileSystem(from).rename(new Path(from), new Path(to))) {
                throw new IOException("the file system refused");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot rename " + from + " to " + to + ": " + e.getMessage(), e);
        }
    }

    /** Every file under {@code dir}: its path relative to {@code dir} to its status. */
    public static Map<String, FileStatus> files(String dir) {
        try {
            FileSystem fs = fileSystem(dir);
            Path root = fs.makeQualified(new Path(dir));
            String prefix = root.toUri().getPath();
            Map<String, FileStatus> files = new TreeMap<>();
            RemoteIterator<LocatedFileStatus> it = fs.listFiles(root, true);
            while (it.hasNext()) {
                LocatedFileStatus s = it.next();
                String path = s.getPath().toUri().getPath();
                files.put(path.substring(prefix.length()).replaceFirst("^/", ""), s);
            }
            return files;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    public static byte[] read(String file) {
        try (InputStream in = fileSystem(file).open(new Path(file))) {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /** Writes {@code bytes} to {@code file}, replacing it. */
    public static void write(String file, byte[] bytes) {
        try (FSDataOutputStream out = fileSystem(file).create(new Path(file), true)) {
            out.write(bytes);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    /** Copies local file {@code from} to {@code to}, replacing it. */
    public static void upload(java.nio.file.Path from, String to) {
        try (FSDataOutputStream out = fileSystem(to).create(new Path(to), true)) {
            Files.copy(from, out);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot copy " + from + " to " + to + ": " + e.getMessage(), e);
        }
    }

    /** Copies every file under local folder {@code from} to folder {@code to}, keeping relative paths; returns them. */
    public static List<String> uploadFolder(java.nio.file.Path from, String to) {
        try (var walk = Files.walk(from)) {
            List<java.nio.file.Path> files = walk.filter(Files::isRegularFile).sorted().toList();
            for (java.nio.file.Path f : files) {
                upload(f, resolve(to, from.relativize(f).toString().replace('\\', '/')));
            }
            return files.stream().map(f -> from.relativize(f).toString()).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + from + ": " + e.getMessage(), e);
        }
    }

    /** Copies {@code from} to local file {@code to}, replacing it. */
    public static void download(String from, java.nio.file.Path to) {
        try (InputStream in = fileSystem(from).open(new Path(from)); OutputStream out = Files.newOutputStream(to)) {
            in.transferTo(out);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot copy " + from + " to " + to + ": " + e.getMessage(), e);
        }
    }
}
