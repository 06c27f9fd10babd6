package org.sparkrlhf.gpuexec.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A safetensors file opened for reading: an 8-byte little-endian header length, a JSON header
 * ({@code name -> {dtype, shape, data_offsets}} and an optional {@code __metadata__}), then the
 * data. The header is validated when the file is opened (types, shapes, offsets inside the file,
 * sizes that match the shapes, no overlaps); tensors are read one at a time when asked for.
 */
public final class SafeTensorsFile {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER = 100L << 20;

    /** One tensor's header entry; begin and end are relative to the start of the data. */
    public record Entry(String name, StDType dtype, int[] shape, long begin, long end) {
        public long numel() {
            long n = 1;
            for (int d : shape) n *= d;
            return n;
        }
    }

    private final Path file;
    private final long dataStart;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private SafeTensorsFile(Path file, long dataStart, Map<String, Entry> entries, Map<String, String> metadata) {
        this.file = file;
        this.dataStart = dataStart;
        this.entries = entries;
        this.metadata = metadata;
    }

    public static SafeTensorsFile open(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new CheckpointException(file + ": not a safetensors file (" + size + " bytes, no header)");
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, file);
            long headerLen = lenBuf.getLong(0);
            if (headerLen <= 0 || headerLen > MAX_HEADER || 8 + headerLen > size) {
                throw new CheckpointException(file + ": corrupt safetensors header: header length " + headerLen
                        + " does not fit a file of " + size + " bytes");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLen);
            readFully(ch, header, 8, file);
            JsonNode root;
            try {
                root = JSON.readTree(new String(header.array(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new CheckpointException(file + ": corrupt safetensors header: not valid JSON ("
                        + e.getMessage().lines().findFirst().orElse("") + ")");
            }
            if (root == null || !root.isObject()) throw new CheckpointException(file + ": corrupt safetensors header: not a JSON object");
            long dataSize = size - 8 - headerLen;
            Map<String, Entry> entries = new LinkedHashMap<>();
            Map<String, String> metadata = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> f = it.next();
                if (f.getKey().equals("__metadata__")) {
                    if (!f.getValue().isObject()) throw new CheckpointException(file + ": field '__metadata__' must be an object");
                    f.getValue().fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                    continue;
                }
                entries.put(f.getKey(), entry(file, f.getKey(), f.getValue(), dataSize));
            }
            List<Entry> sorted = new ArrayList<>(entries.values());
            sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
            for (int i = 1; i < sorted.size(); i++) {
                Entry a = sorted.get(i - 1), b = sorted.get(i);
                if (b.begin() < a.end()) {
                    throw new CheckpointException(file + ": tensor '" + b.name() + "': field 'data_offsets' overlaps tensor '" + a.name() + "'");
                }
            }
            return new SafeTensorsFile(file, 8 + headerLen, Collections.unmodifiableMap(entries), Collections.unmodifiableMap(metadata));
        } catch (NoSuchFileException e) {
            throw new CheckpointException(file + ": no such file");
        } catch (IOException e) {
            throw new CheckpointException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static Entry entry(Path file, String name, JsonNode v, long dataSize) {
        String where = file + ": tensor '" + name + "'";
        if (!v.isObject()) throw new CheckpointException(where + ": expected an object, got " + v);
        JsonNode dt = v.get("dtype"), sh = v.get("shape"), off = v.get("data_offsets");
        if (dt == null || !dt.isTextual()) throw new CheckpointException(where + ": field 'dtype' missing or not a string");
        StDType dtype;
        try {
            dtype = StDType.valueOf(dt.asText());
        } catch (IllegalArgumentException e) {
            throw new CheckpointException(where + ": field 'dtype': unsupported type " + dt.asText() + " (F32, BF16, F16, I64, I32)");
        }
        if (sh == null || !sh.isArray()) throw new CheckpointException(where + ": field 'shape' missing or not a list");
        int[] shape = new int[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.canConvertToInt() || !d.isIntegralNumber() || d.asInt() < 0) {
                throw new CheckpointException(where + ": field 'shape' has a bad dimension " + d);
            }
            shape[i] = d.asInt();
            numel *= shape[i];
        }
        if (off == null || !off.isArray() || off.size() != 2 || !off.get(0).isIntegralNumber() || !off.get(1).isIntegralNumber()) {
            throw new CheckpointException(where + ": field 'data_offsets' must be [begin, end]");
        }
        long begin = off.get(0).asLong(), end = off.get(1).asLong();
        if (begin < 0 || end < begin || end > dataSize) {
            throw new CheckpointException(where + ": field 'data_offsets' [" + begin + ", " + end + "] outside the "
                    + dataSize + " data bytes (truncated file?)");
        }
        if (end - begin != numel * dtype.bytes()) {
            throw new CheckpointException(where + ": field 'data_offsets' spans " + (end - begin) + " bytes but shape "
                    + java.util.Arrays.toString(shape) + " of " + dtype + " needs " + numel * dtype.bytes());
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long position, Path file) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            int n = ch.read(buf, pos);
            if (n < 0) throw new CheckpointException(file + ": unexpected end of file at byte " + pos);
            pos += n;
        }
        buf.flip();
    }

    public Path file() {
        return file;
    }

    public Map<String, Entry> entries() {
        return entries;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public Entry entry(String name) {
        Entry e = entries.get(name);
        if (e == null) throw new CheckpointException(file + ": no tensor '" + name + "'");
        return e;
    }

    private ByteBuffer bytes(Entry e) {
        if (e.end() - e.begin() > Integer.MAX_VALUE - 16) {
            throw new CheckpointException(file + ": tensor '" + e.name() + "' is larger than 2 GiB; unsupported");
        }
        ByteBuffer buf = ByteBuffer.allocate((int) (e.end() - e.begin())).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            readFully(ch, buf, dataStart + e.begin(), file);
        } catch (IOException ex) {
            throw new CheckpointException(file + ": cannot read tensor '" + e.name() + "': " + ex.getMessage(), ex);
        }
        return buf;
    }

    /** A float tensor's values widened to float (F32, BF16, F16). */
    public float[] readFloats(String name) {
        Entry e = entry(name);
        if (!e.dtype().isFloat()) throw new CheckpointException(file + ": tensor '" + name + "' is " + e.dtype() + ", expected a float type");
        ByteBuffer b = bytes(e);
        float[] out = new float[(int) e.numel()];
        switch (e.dtype()) {
            case F32 -> b.asFloatBuffer().get(out);
            case BF16 -> {
                for (int i = 0; i < out.length; i++) out[i] = HalfFloats.bf16ToFloat(b.getShort(2 * i));
            }
            case F16 -> {
                for (int i = 0; i < out.length; i++) out[i] = HalfFloats.f16ToFloat(b.getShort(2 * i));
            }
            default -> throw new IllegalStateException();
        }
        return out;
    }

    /** An integer tensor's values (I64 must fit in int). */
    public int[] readInts(String name) {
        Entry e = entry(name);
        ByteBuffer b = bytes(e);
        int[] out = new int[(int) e.numel()];
        switch (e.dtype()) {
            case I32 -> b.asIntBuffer().get(out);
            case I64 -> {
                for (int i = 0; i < out.length; i++) {
                    long v = b.getLong(8 * i);
                    if (v != (int) v) throw new CheckpointException(file + ": tensor '" + name + "' element " + i + " = " + v + " does not fit in int");
                    out[i] = (int) v;
                }
            }
            default -> throw new CheckpointException(file + ": tensor '" + name + "' is " + e.dtype() + ", expected I64 or I32");
        }
        return out;
    }
}
