package org.sparkrlhf.gpuexec.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.sparkrlhf.gpuexec.cuda.Bf16;

/**
 * The ranged copies of a {@link Backend} ({@link Backend#uploadRange}, {@link Backend#downloadRange},
 * {@link Backend#copyRange}) against plain array copies of the same ranges, for F32 and BF16 tensors
 * and between them: ranges that start and end at, just before and just after the edges of chunks of
 * {@link #CHUNK} elements (as a reallocation's chunks fall on a tensor), the whole tensor, and empty
 * ones. A BF16 tensor holds the reference's values rounded to nearest even, elements outside the
 * range untouched. Shared by the CPU test and the CUDA one.
 */
public final class RangeCopyCheck {
    public static final int CHUNK = 64;
    /** 3 chunks and a bit, so the last chunk is short. */
    public static final int N = 3 * CHUNK + 7;

    private RangeCopyCheck() {
    }

    /** [at, n] pairs: at chunk edges, one off each side of them, across two edges, the whole, empty. */
    static final int[][] RANGES = {
            {0, CHUNK}, {CHUNK, CHUNK}, {CHUNK - 1, 2}, {CHUNK + 1, CHUNK - 1}, {CHUNK - 1, CHUNK + 2},
            {2 * CHUNK, N - 2 * CHUNK}, {3 * CHUNK - 1, N - 3 * CHUNK + 1}, {0, N}, {5, 0}, {N, 0}, {N - 1, 1}};

    public static void check(Backend backend) {
        for (DType dst : new DType[] {DType.F32, DType.BF16}) {
            uploadAndDownload(backend, dst);
            for (DType src : new DType[] {DType.F32, DType.BF16}) {
                copy(backend, dst, src);
            }
        }
    }

    private static float[] values(long seed, DType dtype) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[N];
        for (int i = 0; i < N; i++) {
            v[i] = (float) r.nextGaussian() * 3 + 0.001f * i;
        }
        return rounded(v, dtype);
    }

    private static float[] rounded(float[] v, DType dtype) {
        float[] out = v.clone();
        if (dtype == DType.BF16) {
            for (int i = 0; i < out.length; i++) {
                out[i] = Bf16.toFloat(Bf16.fromFloat(out[i]));
            }
        }
        return out;
    }

    private static void uploadAndDownload(Backend backend, DType dtype) {
        for (int[] range : RANGES) {
            int at = range[0], n = range[1];
            float[] before = values(1, dtype);
            Tensor t = backend.allocate(dtype, N);
            try {
                backend.upload(t, before);
                float[] source = values(2, DType.F32);
                int from = 3; // a range taken from inside the host array, not from its start
                float[] host = new float[N + from];
                System.arraycopy(source, 0, host, from, N);
                backend.uploadRange(t, at, host, from, n);
                float[] expected = before.clone();
                float[] part = rounded(Arrays.copyOfRange(source, 0, n), dtype);
                System.arraycopy(part, 0, expected, at, n);
                String what = dtype + " upload of elements " + at + " .. " + (at + n);
                assertArrayEquals(expected, backend.download(t), what);
                float[] out = new float[n + 4];
                Arrays.fill(out, -7f);
                backend.downloadRange(t, at, out, 2, n);
                float[] want = new float[n + 4];
                Arrays.fill(want, -7f);
                System.arraycopy(expected, at, want, 2, n);
                assertArrayEquals(want, out, dtype + " download of elements " + at + " .. " + (at + n));
            } finally {
                backend.free(t);
            }
        }
    }

    /** Ranges of src copied to a shifted place in dst (a chunk's start in a tensor), on the backend. */
    private static void copy(Backend backend, DType dstType, DType srcType) {
        for (int[] range : RANGES) {
            int srcAt = range[0], n = range[1];
            int dstAt = (srcAt + CHUNK / 2) % (N - n + 1);
            float[] before = values(3, dstType), source = values(4, srcType);
            Tensor dst = backend.allocate(dstType, N), src = backend.allocate(srcType, N);
            try {
                backend.upload(dst, before);
                backend.upload(src, source);
                backend.copyRange(dst, dstAt, src, srcAt, n);
                float[] expected = before.clone();
                System.arraycopy(rounded(Arrays.copyOfRange(source, srcAt, srcAt + n), dstType), 0, expected, dstAt, n);
                assertArrayEquals(expected, backend.download(dst), srcType + " -> " + dstType + " copy of elements "
                        + srcAt + " .. " + (srcAt + n) + " to " + dstAt);
                assertArrayEquals(source, backend.download(src), "the source of a copy is unchanged");
            } finally {
                backend.free(dst);
                backend.free(src);
            }
        }
    }
}
