package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The tensor collectives of {@link Collective} on any backend and transport, staged through host
 * memory a chunk at a time: a chunk of a tensor's elements is read out of it by a ranged download,
 * goes through the group's float collectives, and is written back by a ranged upload, so the
 * largest host array here is one chunk ({@link Collective#chunkBytes}), never a whole tensor.
 *
 * <p>Chunking does not change a result: every element is reduced (or copied) on its own, so a
 * transport that adds in rank order gives the same bits chunked or whole. Small tensors share a
 * chunk (a bucket) so that a model of many small gradients still moves in few messages.
 */
final class HostStaging {
    private HostStaging() {
    }

    /** The floats of one chunk: at least one, at most one Java array's worth. */
    static int chunkFloats(Collective group) {
        long n = group.chunkBytes() / Float.BYTES;
        if (n < 1) {
            throw new IllegalArgumentException("a chunk of " + group.chunkBytes() + " bytes holds no float");
        }
        return (int) Math.min(n, Integer.MAX_VALUE - 8);
    }

    private static void requireFloat(String op, Tensor t) {
        if (!t.dtype().isFloat()) {
            throw new IllegalArgumentException(op + " through host memory takes float tensors, not " + t.describe());
        }
    }

    /** Elements {@code [at, at + n)} of a tensor, at {@code bucketAt} of the bucket. */
    private record Segment(Tensor tensor, long at, int bucketAt, int n) {
    }

    static void allReduceSum(Collective group, Backend backend, List<Tensor> tensors) {
        long total = 0;
        for (Tensor t : tensors) {
            requireFloat("all-reduce", t);
            total += t.numel();
        }
        if (group.size() == 1 || total == 0) {
            return;
        }
        float[] bucket = new float[(int) Math.min(chunkFloats(group), total)];
        List<Segment> segments = new ArrayList<>();
        int filled = 0;
        for (Tensor t : tensors) {
            long at = 0;
            while (at < t.numel()) {
                int n = (int) Math.min(bucket.length - filled, t.numel() - at);
                backend.downloadRange(t, at, bucket, filled, n);
                segments.add(new Segment(t, at, filled, n));
                filled += n;
                at += n;
                if (filled == bucket.length) {
                    reduceBucket(group, backend, bucket, filled, segments);
                    filled = 0;
                }
            }
        }
        if (filled > 0) {
            reduceBucket(group, backend, bucket, filled, segments);
        }
    }

    /** Sums the bucket's first {@code filled} floats over the group and writes each segment back into its tensor. */
    private static void reduceBucket(Collective group, Backend backend, float[] bucket, int filled, List<Segment> segments) {
        // the last bucket is shorter; every rank holds the same tensors, so the same length
        float[] reduced = filled == bucket.length ? bucket : Arrays.copyOf(bucket, filled);
        group.allReduceSum(reduced);
        for (Segment s : segments) {
            backend.uploadRange(s.tensor(), s.at(), reduced, s.bucketAt(), s.n());
        }
        segments.clear();
    }

    static void broadcast(Collective group, Backend backend, Tensor t, int root) {
        requireFloat("broadcast", t);
        if (root < 0 || root >= group.size()) {
            throw new IllegalArgumentException("broadcast from rank " + root + " of " + group.size());
        }
        if (group.size() == 1 || t.numel() == 0) {
            return;
        }
        boolean isRoot = group.rank() == root;
        float[] chunk = new float[(int) Math.min(chunkFloats(group), t.numel())];
        for (long at = 0; at < t.numel(); at += chunk.length) {
            int n = (int) Math.min(chunk.length, t.numel() - at);
            float[] part = n == chunk.length ? chunk : new float[n];
            if (isRoot) {
                backend.downloadRange(t, at, part, 0, n);
            }
            group.broadcast(part, root);
            if (!isRoot) {
                backend.uploadRange(t, at, part, 0, n);
            }
        }
    }

    /**
     * Round k moves chunk k of every message: first the sends (which do not wait for the peer),
     * then the receives. Both ends of a pair know the message's length, so they agree on its chunks.
     */
    static void exchangeMessages(Collective group, Map<Integer, FloatMessage> sends, Map<Integer, FloatMessage> receives) {
        int chunk = chunkFloats(group);
        long rounds = Math.max(rounds(sends, chunk), rounds(receives, chunk));
        float[] buffer = new float[(int) Math.min(chunk, longest(sends, receives))];
        for (long k = 0; k < rounds; k++) {
            long from = k * chunk;
            for (Map.Entry<Integer, FloatMessage> e : sends.entrySet()) {
                int n = e.getValue().chunkLength(from, chunk);
                if (n > 0) {
                    e.getValue().read(from, buffer, 0, n);
                    group.sendFloats(e.getKey(), buffer, 0, n);
                }
            }
            for (Map.Entry<Integer, FloatMessage> e : receives.entrySet()) {
                int n = e.getValue().chunkLength(from, chunk);
                if (n > 0) {
                    group.recvFloats(e.getKey(), buffer, 0, n);
                    e.getValue().write(from, buffer, 0, n);
                }
            }
        }
    }

    /** How many chunks the longest of {@code messages} takes. */
    private static long rounds(Map<Integer, FloatMessage> messages, int chunk) {
        long rounds = 0;
        for (FloatMessage m : messages.values()) {
            rounds = Math.max(rounds, (m.length() + chunk - 1) / chunk);
        }
        return rounds;
    }

    private static long longest(Map<Integer, FloatMessage> sends, Map<Integer, FloatMessage> receives) {
        long n = 0;
        for (FloatMessage m : sends.values()) n = Math.max(n, m.length());
        for (FloatMessage m : receives.values()) n = Math.max(n, m.length());
        return n;
    }

    static void exchangeTensors(Collective group, Backend backend, Map<Integer, Tensor> sends, Map<Integer, Tensor> receives) {
        Map<Integer, FloatMessage> out = new LinkedHashMap<>();
        for (Map.Entry<Integer, Tensor> e : sends.entrySet()) {
            requireFloat("send", e.getValue());
            out.put(e.getKey(), FloatMessage.of(backend, e.getValue()));
        }
        Map<Integer, FloatMessage> in = new LinkedHashMap<>();
        for (Map.Entry<Integer, Tensor> e : receives.entrySet()) {
            requireFloat("receive", e.getValue());
            in.put(e.getKey(), FloatMessage.of(backend, e.getValue()));
        }
        exchangeMessages(group, out, in);
    }

    /** Every rank's part, rank r's broadcast from r in chunks into its place. */
    static void allGather(Collective group, Backend backend, Tensor part, Tensor gathered) {
        requireFloat("all-gather", part);
        requireFloat("all-gather", gathered);
        long n = part.numel();
        if (gathered.numel() != n * group.size()) {
            throw new IllegalArgumentException("all-gather of " + part.describe() + " over " + group.size()
                    + " ranks into " + gathered.describe());
        }
        if (group.size() == 1) {
            backend.copy(gathered, part);
            return;
        }
        float[] chunk = new float[(int) Math.min(chunkFloats(group), Math.max(1, n))];
        for (int root = 0; root < group.size(); root++) {
            for (long at = 0; at < n; at += chunk.length) {
                int c = (int) Math.min(chunk.length, n - at);
                float[] piece = c == chunk.length ? chunk : new float[c];
                if (root == group.rank()) {
                    backend.downloadRange(part, at, piece, 0, c);
                }
                group.broadcast(piece, root);
                backend.uploadRange(gathered, root * n + at, piece, 0, c);
            }
        }
    }
}
