package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The kernels' CUDA C compiled as host C++ and run by a small emulator of the CUDA features they use
 * (threads, __syncthreads, warp shuffles, ldmatrix and mma.sync with the PTX ISA's fragment layouts),
 * each checked against a reference (see emulator/kernel_tests.cpp). It checks the kernels' logic on
 * a machine without a GPU; timing and the real tensor cores are the GPU tests' business.
 *
 * <p>Opt-in ({@code -Dcuda.emulation=true}; {@code bin/spark-rlhf test}, and so CI, sets it): about
 * 10 s to compile and 15 s to run on one core. It needs g++ with C++20 ({@code .ci/run} installs it
 * where it can) and skips, saying so, without it.
 */
@Timeout(900)
class KernelEmulationTest {
    private static final String KERNELS = "/org/sparkrlhf/gpuexec/cuda/";
    private static final String EMULATOR = "/org/sparkrlhf/gpuexec/cuda/emulator/";

    /** (source, namespace, definitions): the kernel modules the C++ checks call. */
    private static final String[][] MODULES = {
            {"attention.cu", "att", ""}, {"flash.cu", "fl16", "HD=16 ACT_BF16"}, {"flash.cu", "fl32", "HD=32 ACT_BF16"},
            {"flash.cu", "fl64", "HD=64 ACT_BF16"}, {"flash.cu", "fl128", "HD=128 ACT_BF16"},
            {"decode.cu", "dec64b", "HD=64 ACT_BF16"}, {"decode.cu", "dec16f", "HD=16"}, {"decode.cu", "dec128b", "HD=128 ACT_BF16"},
            {"sampling.cu", "smp", ""}, {"elementwise.cu", "ew", ""}, {"rotary.cu", "rot", ""}, {"adamw.cu", "adw", ""},
            {"rmsnorm.cu", "rms", ""}, {"logprob.cu", "lp", ""}};

    /** Macros the kernel sources define, undefined after each module so that the next may define them again. */
    private static final String[] MACROS = {"VEC", "LPK", "KPW", "GB", "WARPS", "BR", "PAD", "LOG2E", "LN2", "SPAD", "MAX_D",
            "SAMPLE_THREADS"};

    @Test
    void everyKernelMatchesItsReferenceOnTheEmulator() throws IOException, InterruptedException {
        Assumptions.assumeTrue(Boolean.getBoolean("cuda.emulation"), "opt-in: -Dcuda.emulation=true");
        Assumptions.assumeTrue(hasCompiler(), "skipped: g++ with -std=c++20 is not on the PATH, so the kernels' emulation "
                + "(the only check of their tensor-core fragment layouts without a GPU) cannot run; install g++ "
                + "(Debian: apt-get install g++)");
        Path dir = Files.createTempDirectory("cuda-emulation");
        try {
            Files.writeString(dir.resolve("emu.h"), resource(EMULATOR + "emu.h"));
            Files.writeString(dir.resolve("kernel_tests.cpp"), resource(EMULATOR + "kernel_tests.cpp"));
            StringBuilder kernels = new StringBuilder("#include \"emu.h\"\n");
            for (String[] m : MODULES) kernels.append(hostModule(m[0], m[1], m[2].isEmpty() ? new String[0] : m[2].split(" ")));
            Files.writeString(dir.resolve("kernels.h"), kernels.toString());
            String build = run(dir, 300, "g++", "-std=c++20", "-O2", "-w", "-o", "kernel_tests", "kernel_tests.cpp");
            assertTrue(Files.exists(dir.resolve("kernel_tests")), "the emulation did not compile:\n" + build);
            String out = run(dir, 800, dir.resolve("kernel_tests").toString());
            System.out.println(out);
            assertTrue(out.contains("\n0 failures"), "kernel checks failed on the emulator:\n" + out);
        } finally {
            deleteTree(dir);
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        try (var paths = Files.walk(dir)) {
            for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }

    /** The source as host C++ in its own namespace: CUDA qualifiers dropped, PTX helpers replaced by the emulator's. */
    static String hostModule(String source, String namespace, String[] defines) {
        String s = resource(KERNELS + "common.cuh") + "\n" + resource(KERNELS + source);
        for (String f : new String[] {"smem_addr", "ldsm_x4_t", "ldsm_x4", "mma16816"}) s = stripFunction(s, f);
        s = s.replaceAll("__launch_bounds__\\([^)]*\\)", "")
                .replace("extern \"C\" __global__", "").replace("__global__", "")
                .replace("__forceinline__", "inline").replace("__device__", "")
                .replaceAll("extern __shared__ (\\w+) (\\w+)\\[\\];", "$1* $2 = ($1*)emu_dynamic_smem();")
                .replace("__shared__", "static");
        String helpers = "\ninline void ldsm_x4(unsigned& a, unsigned& b, unsigned& c, unsigned& d, const bf16* p) { emu_ldsm(a, b, c, d, p, false); }\n"
                + "inline void ldsm_x4_t(unsigned& a, unsigned& b, unsigned& c, unsigned& d, const bf16* p) { emu_ldsm(a, b, c, d, p, true); }\n"
                + "inline void mma16816(float* c, const unsigned* a, unsigned b0, unsigned b1) { emu_mma(c, a, b0, b1); }\n";
        s = s.replaceFirst("typedef unsigned short bf16;", "typedef unsigned short bf16;" + helpers);
        StringBuilder out = new StringBuilder();
        for (String d : defines) out.append("#define ").append(d.replace('=', ' ')).append('\n');
        out.append("namespace ").append(namespace).append(" {\n").append(s).append("\n}\n");
        for (String d : defines) out.append("#undef ").append(d.split("=")[0]).append('\n');
        for (String m : MACROS) out.append("#undef ").append(m).append('\n');
        return out.toString();
    }

    /** Removes the definition of function {@code name} (from its line to its matching closing brace). */
    static String stripFunction(String s, String name) {
        int i = s.indexOf(" " + name + "(");
        if (i < 0) return s;
        int start = s.lastIndexOf('\n', i) + 1;
        int k = s.indexOf('{', i), depth = 0;
        for (; k < s.length(); k++) {
            char ch = s.charAt(k);
            if (ch == '{') depth++;
            else if (ch == '}' && --depth == 0) break;
        }
        return s.substring(0, start) + s.substring(k + 1);
    }

    private static String resource(String name) {
        try (InputStream in = KernelEmulationTest.class.getResourceAsStream(name)) {
            if (in == null) throw new IllegalStateException("missing resource " + name);
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static boolean hasCompiler() {
        try {
            Path dir = Files.createTempDirectory("cxx-probe");
            try {
                Files.writeString(dir.resolve("p.cpp"), "#include <ucontext.h>\n#include <concepts>\nint main() { ucontext_t c; return getcontext(&c); }\n");
                run(dir, 60, "g++", "-std=c++20", "-o", "p", "p.cpp");
                return Files.exists(dir.resolve("p"));
            } finally {
                deleteTree(dir);
            }
        } catch (IOException | InterruptedException | RuntimeException e) {
            return false;
        }
    }

    private static String run(Path dir, int seconds, String... command) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(command));
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException(String.join(" ", command) + " ran past " + seconds + " s");
        }
        return new String(out, StandardCharsets.UTF_8);
    }
}
