package org.sparkrlhf.gpuexec.cuda;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import com.sun.jna.NativeLibrary;

/**
 * Opens CUDA's shared libraries by their versioned file names, so that the same jar runs on CUDA 12
 * and CUDA 13 installs (JCuda's own cuBLAS and NVRTC bindings need CUDA 12 exactly). A toolkit
 * library of CUDA major version M needs a driver that runs CUDA M or later: libcublas.so.13 loads on
 * a CUDA 12 driver and then fails at its first call, and NVRTC 13's PTX does not load there. So the
 * version is chosen from the driver's ({@link #forDriver}), not from what happens to be installed.
 */
final class NativeLibraries {
    private NativeLibraries() {}

    /** Opens the first of the names that loads; the error lists every name tried and why it failed. */
    static NativeLibrary open(String what, String... fileNames) {
        return NativeLibrary.getInstance(firstLoadable(what, fileNames));
    }

    /**
     * The first of the toolkit library's names that the installed driver runs and that loads (JNA
     * keeps it loaded, so Native.load by that name finds it).
     */
    static String firstLoadableForDriver(String what, String... fileNames) {
        int driver = CudaDriver.driverVersion();
        List<String> runnable = forDriver(driver, List.of(fileNames));
        List<String> tooNew = new ArrayList<>(List.of(fileNames));
        tooNew.removeAll(runnable);
        String skipped = tooNew.isEmpty() ? "" : "; " + String.join(", ", tooNew) + " need a newer driver than this one (CUDA "
                + cudaVersion(driver) + ", cuDriverGetVersion " + driver + "): install " + what + " for CUDA "
                + driver / 1000 + " or update the driver";
        if (runnable.isEmpty()) throw new UnsupportedOperationException("cannot load " + what + skipped.substring(1));
        try {
            return firstLoadable(what, runnable.toArray(new String[0]));
        } catch (UnsupportedOperationException e) {
            throw new UnsupportedOperationException(e.getMessage() + skipped, e);
        }
    }

    /**
     * Of a library's file names ("libcublas.so.13", "libcublas.so.12", "libcublas.so"), those that a
     * driver of {@code driverVersion} (as cuDriverGetVersion gives it: 1000 * major + 10 * minor) runs,
     * in the order to try them: the newest CUDA major version the driver runs first, the unversioned
     * name (whatever the install links it to) last. A toolkit library of major M runs on a driver of
     * major >= M, whatever the minor versions (CUDA's minor-version compatibility).
     */
    static List<String> forDriver(int driverVersion, List<String> fileNames) {
        int driverMajor = driverVersion / 1000;
        List<String> out = new ArrayList<>();
        for (String name : fileNames) {
            int major = cudaMajor(name);
            if (major <= driverMajor) out.add(name);
        }
        out.sort(Comparator.comparingInt(NativeLibraries::cudaMajor).reversed());
        return out;
    }

    /** "libcublas.so.13" -> 13; -1 for a name without a version number after ".so.". */
    static int cudaMajor(String fileName) {
        int at = fileName.lastIndexOf(".so.");
        if (at < 0) return -1;
        String v = fileName.substring(at + 4);
        int dot = v.indexOf('.');
        if (dot >= 0) v = v.substring(0, dot);
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** "12.4" for 12040. */
    static String cudaVersion(int driverVersion) {
        return driverVersion / 1000 + "." + driverVersion % 1000 / 10;
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
