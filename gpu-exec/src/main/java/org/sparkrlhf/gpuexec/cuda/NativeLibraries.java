package org.sparkrlhf.gpuexec.cuda;

import java.util.ArrayList;
import java.util.List;

import com.sun.jna.NativeLibrary;

/**
 * Opens CUDA's shared libraries by their versioned file names, newest first, so that the same jar
 * runs on CUDA 12 and CUDA 13 installs (JCuda's own cuBLAS and NVRTC bindings need CUDA 12 exactly).
 */
final class NativeLibraries {
    private NativeLibraries() {}

    /** Opens the first of the names that loads; the error lists every name tried and why it failed. */
    static NativeLibrary open(String what, String... fileNames) {
        return NativeLibrary.getInstance(firstLoadable(what, fileNames));
    }

    /** The first of the names that loads (JNA keeps it loaded, so Native.load by that name finds it). */
    static String firstLoadable(String what, String... fileNames) {
        List<String> failures = new ArrayList<>();
        for (String name : fileNames) {
            try {
                NativeLibrary.getInstance(name);
                return name;
            } catch (UnsatisfiedLinkError e) {
                failures.add(name + " (" + firstLine(e.getMessage()) + ")");
            }
        }
        throw new UnsupportedOperationException("cannot load " + what + ": tried " + String.join(", ", failures));
    }

    private static String firstLine(String s) {
        if (s == null) return "no message";
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
