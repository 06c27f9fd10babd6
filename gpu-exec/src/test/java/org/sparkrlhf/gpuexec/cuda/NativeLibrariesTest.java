package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;

import org.junit.jupiter.api.Test;

/** Which toolkit library versions a driver runs: no GPU needed, the choice is a function of two inputs. */
class NativeLibrariesTest {
    private static final List<String> CUBLAS = List.of("libcublas.so.13", "libcublas.so.12", "libcublas.so");

    @Test
    void aCuda13DriverTakesTheCuda13LibraryFirst() {
        assertEquals(CUBLAS, NativeLibraries.forDriver(13000, CUBLAS));
        assertEquals(CUBLAS, NativeLibraries.forDriver(13010, CUBLAS));
    }

    @Test
    void aCuda12DriverNeverTakesTheCuda13Library() {
        // 12.8 (driver 570): libcublas.so.13 would load and fail at its first call
        assertEquals(List.of("libcublas.so.12", "libcublas.so"), NativeLibraries.forDriver(12080, CUBLAS));
        assertEquals(List.of("libnvrtc.so.12"), NativeLibraries.forDriver(12000, List.of("libnvrtc.so.13", "libnvrtc.so.12")));
    }

    @Test
    void theNewestVersionComesFirstWhateverTheOrderGiven() {
        assertEquals(List.of("libcublas.so.13", "libcublas.so.12", "libcublas.so"),
                NativeLibraries.forDriver(13000, List.of("libcublas.so", "libcublas.so.12", "libcublas.so.13")));
    }

    @Test
    void aDriverOlderThanEveryVersionRunsOnlyTheUnversionedName() {
        assertEquals(List.of("libcublas.so"), NativeLibraries.forDriver(11080, CUBLAS));
        assertEquals(List.of(), NativeLibraries.forDriver(11080, List.of("libcublas.so.13", "libcublas.so.12")));
    }

    @Test
    void versionsAreReadFromTheFileNames() {
        assertEquals(13, NativeLibraries.cudaMajor("libcublas.so.13"));
        assertEquals(12, NativeLibraries.cudaMajor("libnvrtc.so.12.8.93"));
        assertEquals(-1, NativeLibraries.cudaMajor("libcublas.so"));
        assertEquals("12.4", NativeLibraries.cudaVersion(12040));
        assertEquals("13.0", NativeLibraries.cudaVersion(13000));
    }
}
