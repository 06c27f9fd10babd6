package org.sparkrlhf.gpuexec.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The weights of a Hugging Face model directory: {@code model.safetensors}, or the shards listed
 * by {@code model.safetensors.index.json}; read by name, one tensor at a time. Writing picks one
 * file or shards of at most a given size and removes the files of the other layout, so that
 * transformers (which prefers model.safetensors) cannot load a stale file.
 */
public final class CheckpointWeights {
    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path dir;
    private final Map<String, SafeTensorsFile> byName;

    private CheckpointWeights(Path dir, Map<String, SafeTensorsFile> byName) {
        this.dir = dir;
        this.byName = byName;
    }

    public static CheckpointWeights open(Path dir) {
        if (!Files.isDirectory(dir)) throw new CheckpointException(dir + ": no such model directory");
        Path single = dir.resolve(SINGLE), index = dir.resolve(INDEX);
        Map<String, SafeTensorsFile> byName = new LinkedHashMap<>();
        if (Files.isRegularFile(single)) {
            SafeTensorsFile f = SafeTensorsFile.open(single);
            for (String name : f.entries().keySet()) byName.put(name, f);
            return new CheckpointWeights(dir, byName);
        }
        if (!Files.isRegularFile(index)) {
            throw new CheckpointException(dir + ": no " + SINGLE + " or " + INDEX + " there");
        }
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(index));
        } catch (IOException e) {
            throw new CheckpointException(index + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) throw new CheckpointException(index + ": field 'weight_map' missing or not an object");
        Map<String, SafeTensorsFile> shards = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String shardName = e.getValue().asText();
            if (!e.getValue().isTextual() || shardName.contains("/") || shardName.contains("\\")) {
                throw new CheckpointException(index + ": field 'weight_map." + e.getKey() + "' must name a file in the directory, got " + e.getValue());
            }
            SafeTensorsFile shard = shards.computeIfAbsent(shardName, s -> {
                Path p = dir.resolve(s);
                if (!Files.isRegularFile(p)) throw new CheckpointException(index + ": shard " + s + " (of tensor '" + e.getKey() + "') is missing");
                return SafeTensorsFile.open(p);
            });
            if (!shard.entries().containsKey(e.getKey())) {
                throw new CheckpointException(shard.file() + ": tensor '" + e.getKey() + "' listed in " + INDEX + " is not in the shard");
            }
            byName.put(e.getKey(), shard);
        }
        return new CheckpointWeights(dir, byName);
    }

    public Path dir() {
        return dir;
    }

    public Set<String> names() {
        return byName.keySet();
    }

    public boolean has(String name) {
        return byName.containsKey(name);
    }

    private SafeTensorsFile file(String name) {
        SafeTensorsFile f = byName.get(name);
        if (f == null) throw new CheckpointException(dir + ": the checkpoint has no tensor '" + name + "'");
        return f;
    }

    public SafeTensorsFile.Entry entry(String name) {
        return file(name).entry(name);
    }

    /** The safetensors file that holds tensor {@code name}. */
    public Path fileOf(String name) {
        return file(name).file();
    }

    /** The values of a float tensor whose shape must be {@code expected}. */
    public float[] floats(String name, int... expected) {
        SafeTensorsFile f = file(name);
        int[] shape = f.entry(name).shape();
        if (!java.util.Arrays.equals(shape, expected)) {
            throw new CheckpointException(f.file() + ": tensor '" + name + "' has shape " + java.util.Arrays.toString(shape)
                    + ", the config needs " + java.util.Arrays.toString(expected));
        }
        return f.readFloats(name);
    }

    /** Writes weights to dir: one model.safetensors if they fit in maxShardBytes, else numbered shards and the index. */
    public static void write(Path dir, List<SafeTensorsWriter.Item> items, long maxShardBytes) {
        if (maxShardBytes <= 0) throw new IllegalArgumentException("max shard size must be positive, got " + maxShardBytes);
        long total = 0;
        for (SafeTensorsWriter.Item it : items) total += it.bytes();
        List<List<SafeTensorsWriter.Item>> shards = new ArrayList<>();
        List<SafeTensorsWriter.Item> current = new ArrayList<>();
        long currentBytes = 0;
        for (SafeTensorsWriter.Item it : items) {
            if (!current.isEmpty() && currentBytes + it.bytes() > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(it);
            currentBytes += it.bytes();
        }
        if (!current.isEmpty() || shards.isEmpty()) shards.add(current);
        try {
            Files.createDirectories(dir);
            if (shards.size() == 1) {
                SafeTensorsWriter.write(dir.resolve(SINGLE), shards.get(0), null);
                Files.deleteIfExists(dir.resolve(INDEX));
                deleteShards(dir, Set.of());
                return;
            }
            ObjectNode index = JSON.createObjectNode();
            index.putObject("metadata").put("total_size", total);
            ObjectNode map = index.putObject("weight_map");
            List<String> written = new ArrayList<>();
            for (int s = 0; s < shards.size(); s++) {
                String name = String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
                SafeTensorsWriter.write(dir.resolve(name), shards.get(s), null);
                for (SafeTensorsWriter.Item it : shards.get(s)) map.put(it.name(), name);
                written.add(name);
            }
            // model.safetensors would shadow the index for transformers: remove it before the index appears
            Files.deleteIfExists(dir.resolve(SINGLE));
            AtomicFiles.writeString(dir.resolve(INDEX), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(index));
            deleteShards(dir, Set.copyOf(written));
        } catch (IOException e) {
            throw new CheckpointException(dir + ": cannot write weights: " + e.getMessage(), e);
        }
    }

    private static void deleteShards(Path dir, Set<String> keep) throws IOException {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "model-*-of-*.safetensors")) {
            for (Path p : ds) if (!keep.contains(p.getFileName().toString())) Files.deleteIfExists(p);
        }
    }
}
