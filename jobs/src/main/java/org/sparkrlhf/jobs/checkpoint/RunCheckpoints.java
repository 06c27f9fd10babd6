package org.sparkrlhf.jobs.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.apache.hadoop.fs.LocatedFileStatus;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The checkpoints of a run, under {@code <output>/checkpoints/} on any Hadoop FileSystem.
 *
 * <p>A checkpoint is the folder {@code iter-NNNNNNNN} holding whatever the run writes (one HF
 * folder per trained model, optimizer states, ...), {@code state.json} ({@link RunState}) and,
 * written last, {@code _COMPLETE}: the list of every file with its size. It is written under a
 * temporary name ({@code iter-NNNNNNNN.partial-<uuid>}) and renamed once complete. A reader takes a
 * folder only when its name has no suffix, its marker is there and every listed file has its
 * listed size, so a checkpoint cut short at any point (a killed job, an object store whose rename
 * is a copy) is never taken for a complete one. Partial folders are removed by the next write.
 */
public final class RunCheckpoints {
    private static final Pattern COMPLETE_NAME = Pattern.compile("iter-(\\d{8})");
    static final String MARKER = "_COMPLETE";
    static final String STATE = "state.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Writes the run's files of one checkpoint into a local folder. */
    @FunctionalInterface
    public interface Contents {
        void write(java.nio.file.Path dir) throws IOException;
    }

    /** A complete checkpoint: its folder and state. */
    public record Checkpoint(Path dir, RunState state) {
        /** The folder as a local path (for the engine's readers); an error on remote file systems. */
        public java.nio.file.Path localDir() {
            if (dir.toUri().getScheme() != null && !dir.toUri().getScheme().equals("file")) {
                throw new UnsupportedOperationException("checkpoint " + dir + " is not on a local file system");
            }
            return java.nio.file.Path.of(dir.toUri().getPath());
        }
    }

    private final Path root;
    private final FileSystem fs;

    public RunCheckpoints(String output, Configuration hadoop) {
        try {
            Path out = new Path(output);
            this.fs = out.getFileSystem(hadoop);
            this.root = fs.makeQualified(new Path(out, "checkpoints"));
        } catch (IOException e) {
            throw new IllegalStateException("cannot open " + output + ": " + e.getMessage(), e);
        }
    }

    public Path root() {
        return root;
    }

    /**
     * Writes checkpoint {@code state.iteration()}: {@code contents} fills the folder, then the state
     * and the marker are written and the folder is renamed into place. Keeps the newest {@code keep}
     * complete checkpoints. Returns the checkpoint's folder.
     */
    public Path write(RunState state, Contents contents, int keep) {
        String name = String.format("iter-%08d", state.iteration());
        Path partial = new Path(root, name + ".partial-" + UUID.randomUUID());
        Path complete = new Path(root, name);
        try {
            fs.mkdirs(root);
            removePartials();
            if (fs.exists(complete)) {
                throw new IllegalStateException("checkpoint " + complete + " already exists");
            }
            boolean local = fs instanceof LocalFileSystem || fs.getUri().getScheme().equals("file");
            if (local) {
                java.nio.file.Path dir = java.nio.file.Path.of(fs.makeQualified(partial).toUri().getPath());
                Files.createDirectories(dir);
                contents.write(dir);
            } else {
                java.nio.file.Path staging = Files.createTempDirectory("spark-rlhf-checkpoint");
                contents.write(staging);
                fs.copyFromLocalFile(true, true, new Path(staging.toUri()), partial);
            }
            writeBytes(new Path(partial, STATE), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(state));
            writeBytes(new Path(partial, MARKER), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(listing(partial)));
            if (!fs.rename(partial, complete)) {
                throw new IOException("cannot rename " + partial + " to " + complete);
            }
            prune(keep);
            return complete;
        } catch (IOException e) {
            throw new IllegalStateException("writing checkpoint " + complete + " failed: " + e.getMessage(), e);
        }
    }

    /** The newest complete checkpoint, if any. */
    public Optional<Checkpoint> newestComplete() {
        List<Path> complete = completeDirs();
        if (complete.isEmpty()) {
            return Optional.empty();
        }
        Path newest = complete.get(complete.size() - 1);
        try (InputStream in = fs.open(new Path(newest, STATE))) {
            return Optional.of(new Checkpoint(newest, JSON.readValue(in, RunState.class)));
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + new Path(newest, STATE) + ": " + e.getMessage(), e);
        }
    }

    /** Complete checkpoint folders, oldest first. */
    public List<Path> completeDirs() {
        List<Path> dirs = new ArrayList<>();
        try {
            if (!fs.exists(root)) {
                return dirs;
            }
            for (FileStatus s : fs.listStatus(root)) {
                Matcher m = COMPLETE_NAME.matcher(s.getPath().getName());
                if (s.isDirectory() && m.matches() && isComplete(s.getPath())) {
                    dirs.add(s.getPath());
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list " + root + ": " + e.getMessage(), e);
        }
        dirs.sort(Comparator.comparing(Path::getName));
        return dirs;
    }

    private boolean isComplete(Path dir) throws IOException {
        Path marker = new Path(dir, MARKER);
        if (!fs.exists(marker)) {
            return false;
        }
        JsonNode listed;
        try (InputStream in = fs.open(marker)) {
            listed = JSON.readTree(in);
        } catch (IOException e) {
            return false; // a marker cut short
        }
        Map<String, Long> actual = listing(dir);
        actual.remove(MARKER);
        if (listed == null || listed.size() != actual.size()) {
            return false;
        }
        for (Map.Entry<String, Long> e : actual.entrySet()) {
            JsonNode size = listed.get(e.getKey());
            if (size == null || size.asLong(-1) != e.getValue()) {
                return false;
            }
        }
        return true;
    }

    /** Every file under {@code dir} (relative path to size), the marker excluded. */
    private Map<String, Long> listing(Path dir) throws IOException {
        Map<String, Long> files = new TreeMap<>();
        String prefix = fs.makeQualified(dir).toUri().getPath();
        RemoteIterator<LocatedFileStatus> it = fs.listFiles(dir, true);
        while (it.hasNext()) {
            LocatedFileStatus s = it.next();
            String relative = s.getPath().toUri().getPath().substring(prefix.length() + 1);
            if (!relative.equals(MARKER) && !s.getPath().getName().startsWith(".")) {
                files.put(relative, s.getLen());
            }
        }
        return files;
    }

    private void writeBytes(Path file, byte[] bytes) throws IOException {
        try (FSDataOutputStream out = fs.create(file, false)) {
            out.write(bytes);
        }
    }

    private void removePartials() throws IOException {
        for (FileStatus s : fs.listStatus(root)) {
            if (s.getPath().getName().contains(".partial-")) {
                fs.delete(s.getPath(), true);
            }
        }
    }

    private void prune(int keep) throws IOException {
        List<Path> complete = completeDirs();
        for (int i = 0; i < complete.size() - keep; i++) {
            fs.delete(complete.get(i), true);
        }
    }

    /** The state of a checkpoint as JSON text (for progress lines and tests). */
    public static String describe(RunState state) {
        try {
            ObjectNode node = JSON.valueToTree(state);
            return new String(JSON.writeValueAsBytes(node), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
