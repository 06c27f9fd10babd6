package org.sparkrlhf.gpuexec.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Writes a safetensors file the way the Python library does (header padded with spaces to a
 * multiple of 8 bytes, {@code __metadata__ = {"format": "pt"}} which transformers requires, data
 * in header order), to a temporary file renamed into place when complete.
 */
public final class SafeTensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A tensor to write: float values converted to dtype, or int values for I32 / I64. */
    public record Item(String name, StDType dtype, int[] shape, Supplier<float[]> floats, Supplier<int[]> ints) {
        public static Item floats(String name, StDType dtype, int[] shape, Supplier<float[]> values) {
            return new Item(name, dtype, shape, values, null);
        }

        public static Item ints(String name, StDType dtype, int[] shape, Supplier<int[]> values) {
            return new Item(name, dtype, shape, null, values);
        }

        public long numel() {
            long n = 1;
            for (int d : shape) n *= d;
            return n;
        }

        public long bytes() {
            return numel() * dtype.bytes();
        }
    }

    private SafeTensorsWriter() {
    }

    public static void write(Path file, List<Item> items, Map<String, String> metadata) {
        ObjectNode header = JSON.createObjectNode();
        ObjectNode meta = header.putObject("__metadata__");
        meta.put("format", "pt");
        if (metadata != null) metadata.forEach(meta::put);
        long offset = 0;
        for (Item it : items) {
            ObjectNode e = header.putObject(it.name());
            e.put("dtype", it.dtype().name());
            ArrayNode s = e.putArray("shape");
            for (int d : it.shape()) s.add(d);
            ArrayNode o = e.putArray("data_offsets");
            o.add(offset);
            o.add(offset + it.bytes());
            offset += it.bytes();
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(header);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded);
        head.put(json);
        while (head.position() < 8 + padded) head.put((byte) ' ');
        head.flip();
        AtomicFiles.write(file, ch -> {
            writeFully(ch, head);
            for (Item it : items) writeFully(ch, encode(it));
        });
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    private static ByteBuffer encode(Item it) {
        long bytes = it.bytes();
        if (bytes > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("tensor '" + it.name() + "' is larger than 2 GiB");
        ByteBuffer b = ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (it.dtype().isFloat()) {
            float[] v = it.floats().get();
            if (v.length != it.numel()) throw new IllegalArgumentException("tensor '" + it.name() + "': " + v.length + " values for its shape");
            switch (it.dtype()) {
                case F32 -> b.asFloatBuffer().put(v);
                case BF16 -> {
                    for (float f : v) b.putShort(HalfFloats.floatToBf16(f));
                }
                case F16 -> {
                    for (float f : v) b.putShort(HalfFloats.floatToF16(f));
                }
                default -> throw new IllegalStateException();
            }
        } else {
            int[] v = it.ints().get();
            if (v.length != it.numel()) throw new IllegalArgumentException("tensor '" + it.name() + "': " + v.length + " values for its shape");
            if (it.dtype() == StDType.I64) for (int x : v) b.putLong(x);
            else b.asIntBuffer().put(v);
        }
        b.position(0);
        b.limit((int) bytes);
        return b;
    }

}
