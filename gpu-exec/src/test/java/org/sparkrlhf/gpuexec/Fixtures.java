package org.sparkrlhf.gpuexec;

import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;

import java.net.URISyntaxException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** The golden fixtures made with HF transformers (src/test/resources/fixtures), and comparisons. */
public final class Fixtures {
    private Fixtures() {
    }

    public static Path dir(String name) {
        try {
            return Path.of(Fixtures.class.getResource("/fixtures/" + name + "/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    public static SafeTensorsFile expected(String name) {
        return SafeTensorsFile.open(dir(name).resolve("expected.safetensors"));
    }

    /** Max |a - b| over the elements where keep is true (keep null: all). */
    public static double maxAbsDiff(float[] expected, float[] actual, boolean[] keep) {
        assertEquals(expected.length, actual.length, "lengths");
        double max = 0;
        for (int i = 0; i < expected.length; i++) {
            if (keep != null && !keep[i]) continue;
            if (!Float.isFinite(actual[i])) fail("non-finite value at " + i + ": " + actual[i]);
            max = Math.max(max, Math.abs(expected[i] - actual[i]));
        }
        return max;
    }

    public static double maxAbs(float[] a) {
        double max = 0;
        for (float v : a) max = Math.max(max, Math.abs(v));
        return max;
    }
}
