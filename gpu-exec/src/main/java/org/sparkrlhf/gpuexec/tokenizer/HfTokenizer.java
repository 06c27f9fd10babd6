package org.sparkrlhf.gpuexec.tokenizer;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;

/**
 * A Hugging Face tokenizer.json read offline through DJL's bindings of the Rust tokenizers.
 * Special tokens are not added: prompts carry their own BOS or chat template, as the datasets
 * module builds them, so that encode(decode(ids)) round-trips exactly.
 */
public final class HfTokenizer implements AutoCloseable {
    private final HuggingFaceTokenizer tokenizer;
    private final Path file;

    private HfTokenizer(HuggingFaceTokenizer tokenizer, Path file) {
        this.tokenizer = tokenizer;
        this.file = file;
    }

    /** Opens {@code tokenizer.json}, or the one inside a model directory. */
    public static HfTokenizer open(Path fileOrModelDir) {
        Path file = Files.isDirectory(fileOrModelDir) ? fileOrModelDir.resolve("tokenizer.json") : fileOrModelDir;
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + ": no tokenizer.json there");
        }
        useBundledCpuLibrary();
        try {
            HuggingFaceTokenizer t = HuggingFaceTokenizer.newInstance(file, Map.of(
                    "addSpecialTokens", "false", "truncation", "false", "padding", "false"));
            return new HfTokenizer(t, file);
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException(file + ": cannot read tokenizer: " + e.getMessage(), e);
        }
    }

    /**
     * DJL picks a CUDA build of its native library when it sees a GPU and then tries to download
     * it, which fails on offline GPU executors. Tokenization needs no GPU: point DJL at the CPU
     * library its jar bundles (extracted once per JVM user), unless RUST_LIBRARY_PATH is set.
     */
    private static synchronized void useBundledCpuLibrary() {
        if (System.getProperty("RUST_LIBRARY_PATH") != null || System.getenv("RUST_LIBRARY_PATH") != null) {
            return;
        }
        String arch = switch (System.getProperty("os.arch")) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64" -> "aarch64";
            default -> null;
        };
        if (arch == null || !System.getProperty("os.name").startsWith("Linux")) {
            return; // DJL's own platform detection serves the other systems
        }
        String resource = "native/lib/linux-" + arch + "/cpu/libtokenizers.so";
        try (InputStream in = HuggingFaceTokenizer.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                return;
            }
            Path dir = Path.of(System.getProperty("java.io.tmpdir"),
                    "spark-rlhf-tokenizers-" + System.getProperty("user.name") + "-" + libraryVersion());
            Path lib = dir.resolve("libtokenizers.so");
            if (!Files.isRegularFile(lib)) {
                Files.createDirectories(dir);
                Path tmp = Files.createTempFile(dir, "libtokenizers", ".tmp");
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                Files.move(tmp, lib, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            }
            System.setProperty("RUST_LIBRARY_PATH", lib.toString());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot extract the tokenizers native library: " + e.getMessage(), e);
        }
    }

    private static String libraryVersion() {
        String v = HuggingFaceTokenizer.class.getPackage().getSpecificationVersion();
        return v == null ? "unknown" : v;
    }

    public long[] encode(String text) {
        Encoding e = tokenizer.encode(text, false, false);
        return e.getIds();
    }

    public int[] encodeInts(String text) {
        long[] ids = encode(text);
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = Math.toIntExact(ids[i]);
        return out;
    }

    /** Decodes keeping special tokens out of the text, as HF's decode(skip_special_tokens=True). */
    public String decode(long[] ids) {
        return tokenizer.decode(ids, true);
    }

    public String decode(int[] ids) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) l[i] = ids[i];
        return decode(l);
    }

    public Path file() {
        return file;
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
