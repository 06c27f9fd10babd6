package org.sparkrlhf.jobs.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.SaveModelCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.DeviceSlot;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
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
 * written last, {@code _COMPLETE}: the list of every file with its size. Where a folder's rename is
 * atomic (local disks, HDFS) it is written under a temporary name
 * ({@code iter-NNNNNNNN.partial-<uuid>}) and renamed once complete; on the object stores (s3a,
 * abfss, gs, ...), whose rename is a copy of every file, it is written in place, the marker last.
 * A reader takes a folder only when its name has no suffix, its marker is there and every listed
 * file has its listed size, so a checkpoint cut short at any point (a killed job, a copy cut
 * short) is never taken for a complete one. Partial folders are removed by the next write.
 *
 * <p>A folder named as a checkpoint that is not complete (its marker missing or unreadable, a file
 * shorter, longer, missing or unlisted, its state unreadable: a copy cut short, a disk that lost
 * a file) never wedges a run: {@link #resume} sets each one aside (renames it
 * {@code iter-NNNNNNNN.set-aside-<uuid>}, saying why on the progress stream) before it looks for
 * the newest complete checkpoint, and {@link #write} sets aside one it meets in the way of the
 * checkpoint it writes. A set-aside folder is kept for a look as long as a checkpoint of its
 * iteration would be under {@code checkpoint.keep}: it is removed once it is older than the oldest
 * complete checkpoint kept.
 *
 * <p>A training loop uses two calls: {@link #resume} once before its first iteration (where to
 * start: a fresh run, or the newest complete checkpoint with its {@link RunState} and the
 * {@link ModelSource}s its trained models reload from), and {@link #save} every
 * {@code checkpoint.every} iterations, with the trained models and the state. A checkpoint folder:
 * <pre>
 *   iter-00000010/
 *     actor/               one folder per trained model role: an HF folder transformers loads
 *       config.json, model.safetensors (or shards + index), tokenizer files,
 *       optimizer.safetensors   AdamW's exp_avg.* / exp_avg_sq.* and the step (OptimizerState)
 *     state.json           RunState: run, iteration, seed, data size/epoch/offset, RNG counter,
 *                          KL coefficient, model versions
 *     _COMPLETE            written last: every file above with its size
 * </pre>
 * Frozen models (ref, reward) are not saved: they are the config's folders, unchanged. In a loop:
 * <pre>{@code
 *   Optional<Checkpoint> resumed = checkpoints.resume(config, dataSize, resume, progress);
 *   DataOrder order = DataOrder.startingAt(dataSize, config.seed(), resumed);
 *   ModelSource actor = resumed.map(c -> c.source("actor")).orElse(initialActor);
 *   long actorVersion = actor.version();
 *   for (int iteration = resumed.map(c -> c.state().iteration() + 1).orElse(1); ...) {
 *       ... // calls, tables
 *       Checkpoint saved = checkpoints.save(runner, new RunState(config.name(), iteration, config.seed(),
 *               dataSize, order.epoch(), order.offset(), rngCounter, klCoef, Map.of("actor", actorVersion),
 *               Map.of()),
 *               List.of(new TrainedModel("actor", actorVersion, layout, mesh, actorDir)), keep);
 *       actor = saved.source("actor"); // where a lost executor reloads it from
 *   }
 * }</pre>
 */
public final class RunCheckpoints {
    private static final Pattern COMPLETE_NAME = Pattern.compile("iter-(\\d{8})");
    private static final Pattern SET_ASIDE_NAME = Pattern.compile("iter-(\\d{8})\\.set-aside-.+");
    private static final String SET_ASIDE = ".set-aside-";
    static final String MARKER = "_COMPLETE";
    static final String STATE = "state.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Writes the run's files of one checkpoint into a folder (a qualified path on the checkpoints' file system). */
    @FunctionalInterface
    public interface Contents {
        void write(String dir) throws IOException;
    }

    /**
     * A trained model to checkpoint: where it is resident (role, parameter version, layout and the
     * devices of that layout, rank 0 first) and the folder it was first loaded from, whose tokenizer
     * files are copied beside the weights.
     */
    public record TrainedModel(String role, long version, String layout, List<DeviceSlot> mesh,
                               java.nio.file.Path sourceDir) {
    }

    /** A complete checkpoint: its folder and state. */
    public record Checkpoint(Path dir, RunState state) {
        /** Where an executor (re)loads trained model {@code role} of this checkpoint from: its folder and version. */
        public ModelSource source(String role) {
            return new ModelSource(new Path(dir, role).toString(), state.version(role));
        }

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
    /** Where notices of set-aside folders go: the run's progress stream once {@link #resume} has it. */
    private PrintStream notices = System.out;

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
     * and the marker are written and the folder is renamed into place (on object stores: filled in
     * place, the marker last). A folder of that name that is not a complete checkpoint is set aside
     * first; a complete one is an error (it is never overwritten). Keeps the newest {@code keep}
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
                Optional<String> defect = defect(complete);
                if (defect.isEmpty()) {
                    // a complete checkpoint is never overwritten: two runs would be writing one output
                    throw new IllegalStateException("checkpoint " + complete + " already exists");
                }
                setAside(complete, defect.get());
            }
            boolean rename = HadoopFiles.atomicRename(fs);
            Path dir = rename ? partial : complete;
            fs.mkdirs(dir);
            contents.write(dir.toString());
            writeBytes(new Path(dir, STATE), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(state));
            writeBytes(new Path(dir, MARKER), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(listing(dir)));
            if (rename && !fs.rename(partial, complete)) {
                throw new IOException("cannot rename " + partial + " to " + complete);
            }
            prune(keep);
            return complete;
        } catch (IOException e) {
            throw new IllegalStateException("writing checkpoint " + complete + " failed: " + e.getMessage(), e);
        }
    }

    /**
     * Writes checkpoint {@code state.iteration()} of a running job: each trained model's HF weights
     * and optimizer state go to {@code <role>/}, written by rank 0 of the devices holding it (whole:
     * a data-parallel home, or for a tensor / pipeline parallel one the single-device copy with the
     * gathered moments that ModelResidency.wholeCopy makes), then the state and the marker. {@code state} must record exactly these models at these versions.
     * Keeps the newest {@code keep} complete checkpoints. The returned checkpoint's
     * {@link Checkpoint#source}s are where a lost executor reloads the models from.
     */
    public Checkpoint save(BarrierCallRunner runner, RunState state, List<TrainedModel> models, int keep) {
        return save(runner, state, models, keep, folder -> { });
    }

    /** As above, with {@code extra} written into the folder after the models (before the marker). */
    public Checkpoint save(BarrierCallRunner runner, RunState state, List<TrainedModel> models, int keep,
                           Contents extra) {
        if (models.size() != state.modelVersions().size()) {
            throw new IllegalArgumentException("run state records models " + state.modelVersions().keySet()
                    + " but " + models.size() + " are saved");
        }
        for (TrainedModel m : models) {
            if (state.version(m.role()) != m.version()) {
                throw new IllegalArgumentException("run state records " + m.role() + " version " + state.version(m.role())
                        + " but version " + m.version() + " is saved");
            }
        }
        Path dir = write(state, folder -> {
            for (TrainedModel m : models) {
                SaveModelCall.save(runner, m.mesh(), m.role(), m.version(), m.layout(), m.sourceDir(),
                        new Path(folder, m.role()).toString(), true);
            }
            extra.write(folder);
        }, keep);
        return new Checkpoint(dir, state);
    }

    /**
     * Where a run starts, called once before its first iteration. With {@code resume}: folders that
     * are not complete checkpoints are set aside (each said on {@code progress}), then the newest
     * complete checkpoint, after checking that it is this run's (same name and seed, a dataset of
     * {@code dataSize} rows, fewer iterations done than the config asks for); when there is none,
     * nothing (a fresh start, said on {@code progress}). Without {@code resume}: nothing, and an
     * error when the output already holds a complete checkpoint (starting over would meet its
     * checkpoints and tables).
     */
    public Optional<Checkpoint> resume(RunConfig config, int dataSize, boolean resume, PrintStream progress) {
        notices = progress;
        if (resume) {
            setAsideIncomplete();
        }
        Optional<Checkpoint> newest = newestComplete();
        if (!resume) {
            if (newest.isPresent()) {
                throw new IllegalArgumentException(config.source() + ": output " + config.output() + " already holds "
                        + "checkpoints of run " + newest.get().state().run() + " (the newest at iteration "
                        + newest.get().state().iteration() + "): pass --resume to continue it, or give another output");
            }
            return Optional.empty();
        }
        if (newest.isEmpty()) {
            progress.printf("resume: no complete checkpoint under %s: starting from iteration 1%n", root);
            return Optional.empty();
        }
        RunState s = newest.get().state();
        String where = newest.get().dir() + "/" + STATE;
        if (!s.run().equals(config.name())) {
            throw new IllegalArgumentException(config.source() + ": name: the run is '" + config.name()
                    + "' but the checkpoint to resume (" + where + ") is of run '" + s.run() + "'");
        }
        if (s.seed() != config.seed()) {
            throw new IllegalArgumentException(config.source() + ": seed: the run's seed is " + config.seed()
                    + " but the checkpoint to resume (" + where + ") was made with seed " + s.seed()
                    + "; the data order and samples would differ");
        }
        if (s.dataSize() != dataSize) {
            throw new IllegalArgumentException(config.source() + ": data: the run reads " + dataSize
                    + " training rows but the checkpoint to resume (" + where + ") read a dataset of " + s.dataSize()
                    + "; the data order would differ");
        }
        if (s.iteration() >= config.iterations()) {
            throw new IllegalArgumentException(config.source() + ": iterations: " + config.iterations()
                    + ", but the checkpoint to resume (" + where + ") is at iteration " + s.iteration()
                    + ": nothing is left to run");
        }
        progress.printf("resume: from %s (iteration %d done, models %s)%n", newest.get().dir(), s.iteration(),
                s.modelVersions());
        return newest;
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
                if (s.isDirectory() && m.matches() && defect(s.getPath()).isEmpty()) {
                    dirs.add(s.getPath());
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list " + root + ": " + e.getMessage(), e);
        }
        dirs.sort(Comparator.comparing(Path::getName));
        return dirs;
    }

    /** Sets aside every folder named as a checkpoint that is not complete, saying why on the progress stream. */
    private void setAsideIncomplete() {
        try {
            if (!fs.exists(root)) {
                return;
            }
            for (FileStatus s : fs.listStatus(root)) {
                if (s.isDirectory() && COMPLETE_NAME.matcher(s.getPath().getName()).matches()) {
                    Optional<String> defect = defect(s.getPath());
                    if (defect.isPresent()) {
                        setAside(s.getPath(), defect.get());
                    }
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot set aside the incomplete checkpoints under " + root + ": "
                    + e.getMessage(), e);
        }
    }

    /** Renames a folder that is not a complete checkpoint out of the way; {@link #prune} removes it later. */
    private void setAside(Path dir, String defect) throws IOException {
        Path aside = new Path(root, dir.getName() + SET_ASIDE + UUID.randomUUID());
        if (!fs.rename(dir, aside)) {
            throw new IOException("cannot rename " + dir + " to " + aside);
        }
        notices.printf("checkpoint %s is not complete (%s): set aside as %s%n", dir, defect, aside.getName());
    }

    /**
     * Why {@code dir} is not a complete checkpoint, or nothing when it is one: its marker is there
     * and lists exactly its files with their sizes, and its state is readable.
     */
    private Optional<String> defect(Path dir) throws IOException {
        Path marker = new Path(dir, MARKER);
        if (!fs.exists(marker)) {
            return Optional.of("no " + MARKER + ": its write was cut short, or the marker was lost");
        }
        JsonNode listed;
        try (InputStream in = fs.open(marker)) {
            listed = JSON.readTree(in);
        } catch (IOException e) {
            // a marker cut short, or one that no longer matches its checksum file
            return Optional.of(MARKER + " cannot be read: " + e.getMessage().lines().findFirst().orElse(""));
        }
        if (listed == null || !listed.isObject()) {
            return Optional.of(MARKER + " is not a JSON object of file sizes");
        }
        Map<String, Long> actual = listing(dir);
        for (Map.Entry<String, Long> e : actual.entrySet()) {
            JsonNode size = listed.get(e.getKey());
            if (size == null) {
                return Optional.of(e.getKey() + " is not listed in " + MARKER);
            }
            if (size.asLong(-1) != e.getValue()) {
                return Optional.of(e.getKey() + " has " + e.getValue() + " bytes, " + MARKER + " lists " + size);
            }
        }
        for (Iterator<String> names = listed.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (!actual.containsKey(name)) {
                return Optional.of(name + ", listed in " + MARKER + ", is missing");
            }
        }
        try (InputStream in = fs.open(new Path(dir, STATE))) {
            JSON.readValue(in, RunState.class);
        } catch (IOException e) {
            return Optional.of(STATE + " cannot be read: " + e.getMessage().lines().findFirst().orElse(""));
        }
        return Optional.empty();
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

    /**
     * Removes all but the newest {@code keep} complete checkpoints, and the set-aside folders older
     * than the oldest checkpoint kept.
     */
    private void prune(int keep) throws IOException {
        List<Path> complete = completeDirs();
        int oldestKept = Math.max(0, complete.size() - keep);
        for (int i = 0; i < oldestKept; i++) {
            fs.delete(complete.get(i), true);
        }
        if (oldestKept == complete.size()) {
            return;
        }
        int keptFrom = iteration(complete.get(oldestKept).getName());
        for (FileStatus s : fs.listStatus(root)) {
            Matcher m = SET_ASIDE_NAME.matcher(s.getPath().getName());
            if (m.matches() && Integer.parseInt(m.group(1)) < keptFrom) {
                fs.delete(s.getPath(), true);
            }
        }
    }

    private static int iteration(String checkpointName) {
        Matcher m = COMPLETE_NAME.matcher(checkpointName);
        if (!m.matches()) {
            throw new IllegalArgumentException("not a checkpoint folder name: " + checkpointName);
        }
        return Integer.parseInt(m.group(1));
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
