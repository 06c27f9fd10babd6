package org.sparkrlhf.gpuexec.cuda;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.LongByReference;
import com.sun.jna.ptr.PointerByReference;

/**
 * NVRTC, the run-time CUDA C compiler of the installed toolkit, through JNA by versioned name. It
 * compiles the kernels' sources for the GPU found: to a cubin when it knows the architecture, else
 * to PTX for the newest architecture it knows, which the driver then compiles.
 */
final class Nvrtc {
    interface Lib extends Library {
        int nvrtcVersion(int[] major, int[] minor);

        int nvrtcGetNumSupportedArchs(int[] n);

        int nvrtcGetSupportedArchs(int[] archs);

        int nvrtcCreateProgram(PointerByReference prog, String src, String name, int numHeaders,
                               String[] headers, String[] includeNames);

        int nvrtcCompileProgram(Pointer prog, int numOptions, String[] options);

        int nvrtcGetProgramLogSize(Pointer prog, LongByReference size);

        int nvrtcGetProgramLog(Pointer prog, byte[] log);

        int nvrtcGetCUBINSize(Pointer prog, LongByReference size);

        int nvrtcGetCUBIN(Pointer prog, byte[] cubin);

        int nvrtcGetPTXSize(Pointer prog, LongByReference size);

        int nvrtcGetPTX(Pointer prog, byte[] ptx);

        int nvrtcDestroyProgram(PointerByReference prog);

        String nvrtcGetErrorString(int result);
    }

    private static volatile Lib lib;

    private Nvrtc() {}

    static Lib lib() {
        Lib l = lib;
        if (l == null) {
            synchronized (Nvrtc.class) {
                if (lib == null) {
                    lib = Native.load(NativeLibraries.firstLoadableForDriver("NVRTC", "libnvrtc.so.13", "libnvrtc.so.12",
                            "libnvrtc.so"), Lib.class);
                }
                l = lib;
            }
        }
        return l;
    }

    /** "13.0" */
    static String version() {
        int[] major = {0}, minor = {0};
        check(lib().nvrtcVersion(major, minor), "nvrtcVersion");
        return major[0] + "." + minor[0];
    }

    static int[] supportedArchitectures() {
        int[] n = {0};
        check(lib().nvrtcGetNumSupportedArchs(n), "nvrtcGetNumSupportedArchs");
        int[] archs = new int[n[0]];
        check(lib().nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs");
        Arrays.sort(archs);
        return archs;
    }

    /** What a compilation produced: a cubin (loadable as is) or PTX (NUL-terminated). */
    record Image(byte[] bytes, boolean isCubin, String log) {}

    /**
     * Compiles {@code source} for compute capability {@code cc} (e.g. 90). {@code name} appears in
     * error messages; {@code options} are extra NVRTC flags such as -D definitions.
     */
    static Image compile(String source, String name, int cc, List<String> options) {
        int[] archs = supportedArchitectures();
        boolean known = Arrays.stream(archs).anyMatch(a -> a == cc);
        int target = cc;
        if (!known) {
            target = -1;
            for (int a : archs) if (a <= cc) target = a;
            if (target < 0) {
                throw new UnsupportedOperationException("NVRTC " + version() + " cannot compile for compute capability "
                        + cc / 10 + "." + cc % 10 + " (it knows " + Arrays.toString(archs) + ")");
            }
        }
        List<String> opts = new ArrayList<>();
        opts.add(known ? "--gpu-architecture=sm_" + target : "--gpu-architecture=compute_" + target);
        opts.add("-std=c++17");
        opts.addAll(options);
        Lib l = lib();
        PointerByReference prog = new PointerByReference();
        check(l.nvrtcCreateProgram(prog, source, name, 0, null, null), "nvrtcCreateProgram");
        try {
            int status = l.nvrtcCompileProgram(prog.getValue(), opts.size(), opts.toArray(new String[0]));
            String log = log(prog.getValue());
            if (status != 0) {
                throw new IllegalStateException("NVRTC " + version() + " could not compile " + name + " with "
                        + opts + ": " + l.nvrtcGetErrorString(status) + "\n" + log);
            }
            LongByReference size = new LongByReference();
            byte[] image;
            if (known) {
                check(l.nvrtcGetCUBINSize(prog.getValue(), size), "nvrtcGetCUBINSize");
                image = new byte[(int) size.getValue()];
                check(l.nvrtcGetCUBIN(prog.getValue(), image), "nvrtcGetCUBIN");
            } else {
                check(l.nvrtcGetPTXSize(prog.getValue(), size), "nvrtcGetPTXSize");
                image = new byte[(int) size.getValue()];
                check(l.nvrtcGetPTX(prog.getValue(), image), "nvrtcGetPTX");
            }
            return new Image(image, known, log);
        } finally {
            l.nvrtcDestroyProgram(prog);
        }
    }

    private static String log(Pointer prog) {
        LongByReference size = new LongByReference();
        if (lib().nvrtcGetProgramLogSize(prog, size) != 0 || size.getValue() <= 1) return "";
        byte[] b = new byte[(int) size.getValue()];
        lib().nvrtcGetProgramLog(prog, b);
        return new String(b, 0, b.length - 1, StandardCharsets.UTF_8);
    }

    private static void check(int status, String call) {
        if (status != 0) throw new IllegalStateException(call + " failed: " + lib().nvrtcGetErrorString(status));
    }
}
