package org.sparkrlhf.gpuexec.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(120)
class CheckpointTest {
    @TempDir
    Path tmp;
    static CpuBackend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    @Test
    void halfFloatConversionsRoundToNearestEven() {
        assertEquals(1.0f, HalfFloats.f16ToFloat(HalfFloats.floatToF16(1.0f)));
        assertEquals((short) 0x3c00, HalfFloats.floatToF16(1.0f));
        assertEquals((short) 0x7bff, HalfFloats.floatToF16(65504f));
        assertEquals((short) 0x7c00, HalfFloats.floatToF16(70000f));
        assertEquals((short) 0x0001, HalfFloats.floatToF16(0x1.0p-24f));
        assertEquals(0x1.0p-24f, HalfFloats.f16ToFloat((short) 0x0001));
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1)
        assertEquals((short) 0x3c00, HalfFloats.floatToF16(1f + 0x1.0p-11f));
        assertEquals((short) 0x3c02, HalfFloats.floatToF16(1f + 3 * 0x1.0p-11f));
        assertEquals((short) 0x3f80, HalfFloats.floatToBf16(1.0f));
        assertEquals((short) 0x3f80, HalfFloats.floatToBf16(1f + 0x1.0p-8f));
        assertEquals((short) 0x3f82, HalfFloats.floatToBf16(1f + 3 * 0x1.0p-8f));
        assertTrue(Float.isNaN(HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(Float.NaN))));
        assertTrue(Float.isNaN(HalfFloats.f16ToFloat(HalfFloats.floatToF16(Float.NaN))));
    }

    @Test
    void safetensorsRoundTripEveryType() throws IOException {
        Random r = new Random(3);
        float[] values = new float[257];
        for (int i = 0; i < values.length; i++) values[i] = (float) r.nextGaussian();
        int[] ints = {0, -1, 7, Integer.MAX_VALUE, Integer.MIN_VALUE, 42};
        Path file = tmp.resolve("t.safetensors");
        SafeTensorsWriter.write(file, List.of(
                SafeTensorsWriter.Item.floats("a.f32", StDType.F32, new int[]{257}, () -> values),
                SafeTensorsWriter.Item.floats("a.bf16", StDType.BF16, new int[]{1, 257}, () -> values),
                SafeTensorsWriter.Item.floats("a.f16", StDType.F16, new int[]{257, 1}, () -> values),
                SafeTensorsWriter.Item.ints("i64", StDType.I64, new int[]{2, 3}, () -> ints),
                SafeTensorsWriter.Item.ints("i32", StDType.I32, new int[]{6}, () -> ints)), null);
        SafeTensorsFile f = SafeTensorsFile.open(file);
        assertEquals("pt", f.metadata().get("format"));
        assertArrayEquals(values, f.readFloats("a.f32"));
        float[] bf = f.readFloats("a.bf16"), h = f.readFloats("a.f16");
        for (int i = 0; i < values.length; i++) {
            assertEquals(HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(values[i])), bf[i]);
            assertEquals(values[i], bf[i], Math.abs(values[i]) * 0x1.0p-8);
            assertEquals(values[i], h[i], Math.abs(values[i]) * 0x1.0p-11 + 0x1.0p-24);
        }
        assertArrayEquals(new int[]{1, 257}, f.entry("a.bf16").shape());
        assertArrayEquals(ints, f.readInts("i64"));
        assertArrayEquals(ints, f.readInts("i32"));
        try (var files = Files.list(tmp)) {
            assertEquals(1, files.count(), "no temporary file is left");
        }
    }

    private Path rawFile(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path p = tmp.resolve("raw.safetensors");
        Files.write(p, b.array());
        return p;
    }

    @Test
    void corruptHeadersNameFileTensorAndField() throws IOException {
        Path p = rawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafeTensorsFile.open(p));
        assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("'w'") && e.getMessage().contains("data_offsets"), e.getMessage());

        Path q = rawFile("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
        e = assertThrows(CheckpointException.class, () -> SafeTensorsFile.open(q));
        assertTrue(e.getMessage().contains("'dtype'") && e.getMessage().contains("Q4"), e.getMessage());

        Path o = rawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
        e = assertThrows(CheckpointException.class, () -> SafeTensorsFile.open(o));
        assertTrue(e.getMessage().contains("overlaps"), e.getMessage());

        Path s = rawFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
        e = assertThrows(CheckpointException.class, () -> SafeTensorsFile.open(s));
        assertTrue(e.getMessage().contains("'shape'"), e.getMessage());

        Path t = tmp.resolve("short.safetensors");
        Files.write(t, new byte[]{1, 2, 3});
        e = assertThrows(CheckpointException.class, () -> SafeTensorsFile.open(t));
        assertTrue(e.getMessage().contains(t.toString()), e.getMessage());
    }

    static Batch probe() {
        return Batch.rightPadded(new int[][]{{5, 17, 300, 2, 41, 9}, {77, 3, 100}}, 0);
    }

    @Test
    void shardedSaveLoadsBackIdentically() throws IOException {
        Path out = tmp.resolve("qwen2-sharded");
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-qwen2"))) {
            model.forward(probe(), false);
            float[] logits = model.logits();
            model.save(out, StDType.F32, 100_000);
            assertTrue(Files.exists(out.resolve(CheckpointWeights.INDEX)));
            assertFalse(Files.exists(out.resolve(CheckpointWeights.SINGLE)));
            JsonNode index = new ObjectMapper().readTree(out.resolve(CheckpointWeights.INDEX).toFile());
            assertEquals(model.parameters().specs().size(), index.get("weight_map").size());
            try (var files = Files.list(out)) {
                assertTrue(files.filter(f -> f.getFileName().toString().matches("model-\\d{5}-of-\\d{5}\\.safetensors")).count() > 1);
            }
            try (LlamaModel back = LlamaModel.load(backend, out)) {
                back.forward(probe(), false);
                assertArrayEquals(logits, back.logits());
                assertEquals(model.config().tieWordEmbeddings(), back.config().tieWordEmbeddings());
            }
            // saving as one file into the same directory removes the shards and the index
            model.save(out, StDType.F32, Long.MAX_VALUE);
            assertFalse(Files.exists(out.resolve(CheckpointWeights.INDEX)));
            try (var files = Files.list(out)) {
                assertEquals(0, files.filter(f -> f.getFileName().toString().startsWith("model-")).count());
            }
            try (LlamaModel back = LlamaModel.load(backend, out)) {
                back.forward(probe(), false);
                assertArrayEquals(logits, back.logits());
            }
        }
    }

    @Test
    void halfPrecisionSavesRoundEveryWeight() throws IOException {
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            for (StDType dtype : new StDType[]{StDType.BF16, StDType.F16}) {
                Path out = tmp.resolve("llama-" + dtype);
                model.save(out, dtype, Long.MAX_VALUE);
                JsonNode config = new ObjectMapper().readTree(out.resolve("config.json").toFile());
                assertEquals(dtype.torchName(), config.get("dtype").asText());
                assertEquals("LlamaForCausalLM", config.get("architectures").get(0).asText());
                SafeTensorsFile f = SafeTensorsFile.open(out.resolve(CheckpointWeights.SINGLE));
                try (LlamaModel back = LlamaModel.load(backend, out)) {
                    for (LlamaWeights.Spec s : model.parameters().specs()) {
                        assertEquals(dtype, f.entry(s.name()).dtype());
                        float[] orig = backend.download(model.parameters().get(s.name()));
                        float[] got = backend.download(back.parameters().get(s.name()));
                        for (int i = 0; i < orig.length; i++) {
                            float want = dtype == StDType.BF16 ? HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(orig[i]))
                                    : HalfFloats.f16ToFloat(HalfFloats.floatToF16(orig[i]));
                            assertEquals(want, got[i], s.name() + "[" + i + "]");
                        }
                    }
                }
            }
        }
    }

    @Test
    void bf16ParametersOnTheBackendAreRounded() {
        try (LlamaModel f32 = LlamaModel.load(backend, Fixtures.dir("tiny-llama"));
             LlamaModel bf16 = LlamaModel.load(backend, Fixtures.dir("tiny-llama"), DType.BF16)) {
            float[] a = backend.download(f32.parameters().embed), b = backend.download(bf16.parameters().embed);
            for (int i = 0; i < a.length; i++) assertEquals(HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(a[i])), b[i]);
            float[] la = f32.forward(probe(), false).logprobs(), lb = bf16.forward(probe(), false).logprobs();
            assertTrue(Fixtures.maxAbsDiff(la, lb, null) < 0.05, "bf16 weights give close logprobs");
        }
    }

    @Test
    void missingTensorsAndShardsAreNamed() throws IOException {
        Path out = tmp.resolve("sharded");
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            model.save(out, StDType.F32, 100_000);
        }
        Files.copy(Fixtures.dir("tiny-llama").resolve("tokenizer.json"), out.resolve("tokenizer.json"));
        Path shard = out.resolve("model-00002-of-" + String.format("%05d", countShards(out)) + ".safetensors");
        Files.delete(shard);
        CheckpointException e = assertThrows(CheckpointException.class, () -> LlamaModel.load(backend, out));
        assertTrue(e.getMessage().contains(CheckpointWeights.INDEX) && e.getMessage().contains(shard.getFileName().toString()), e.getMessage());
    }

    private static long countShards(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().matches("model-\\d{5}-of-\\d{5}\\.safetensors")).count();
        }
    }
}
