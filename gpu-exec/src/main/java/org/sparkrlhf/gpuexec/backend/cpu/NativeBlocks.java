package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The native blocks behind tensors' mirrors ({@link CpuTensor#nativeMirror}), kept for reuse when a
 * tensor is released, by exact length. A pass allocates the same activations every time, and a
 * block freed to the C allocator comes back from the kernel as fresh pages (glibc maps large
 * blocks anew and trims its heap after frees), each zeroed on its first write inside a product or
 * kernel. On the 134M benchmark model, one thread, CpuOpProfile (the engine alone in its process,
 * as on an executor): forward + backward 3.36 against 3.18 CPU-s per run and forward 1.11 against
 * 1.00 without and with the pool, in one session (an earlier run without it, 3.93 s, and with glibc
 * told to keep its memory, 3.44 s). In CpuEngineBenchmark, whose PyTorch runs in between change
 * what glibc keeps, it made no measurable difference.
 *
 * <p>At most as many bytes as the system property {@value #MAX_POOLED_BYTES} says wait here
 * (default 1 GiB); beyond it the blocks given back longest ago are freed.
 * A block is taken back most recently given first (its pages likely still in cache).
 */
final class NativeBlocks {
    static final String MAX_POOLED_BYTES = "sparkrlhf.cpu.pooledNativeBytes";
    private static final long MAX = Long.getLong(MAX_POOLED_BYTES, 1L << 30);

    /** Pooled blocks by when they were given back (oldest first), under a sequence number. */
    private static final LinkedHashMap<Long, FloatPointer> BY_AGE = new LinkedHashMap<>();
    /** Sequence numbers of the pooled blocks of each length, oldest first. */
    private static final Map<Long, ArrayDeque<Long>> BY_LENGTH = new HashMap<>();
    private static long next;
    private static long pooledBytes;

    private NativeBlocks() {
    }

    /** A block of exactly {@code n} floats (at least 1), positioned at 0; its contents are undefined. */
    static FloatPointer take(long n) {
        long len = Math.max(1, n);
        synchronized (NativeBlocks.class) {
            ArrayDeque<Long> same = BY_LENGTH.get(len);
            if (same != null && !same.isEmpty()) {
                FloatPointer p = BY_AGE.remove(same.pollLast());
                pooledBytes -= 4 * len;
                return p.position(0);
            }
        }
        return new FloatPointer(len);
    }

    /** Takes {@code p} (from {@link #take}) back; the caller no longer uses it. */
    static void give(FloatPointer p) {
        long len = p.capacity();
        if (4 * len > MAX) {
            p.close();
            return;
        }
        synchronized (NativeBlocks.class) {
            long seq = next++;
            BY_AGE.put(seq, p);
            BY_LENGTH.computeIfAbsent(len, k -> new ArrayDeque<>()).addLast(seq);
            pooledBytes += 4 * len;
            for (Iterator<Map.Entry<Long, FloatPointer>> it = BY_AGE.entrySet().iterator();
                 pooledBytes > MAX && it.hasNext(); ) {
                Map.Entry<Long, FloatPointer> oldest = it.next();
                it.remove();
                FloatPointer q = oldest.getValue();
                long qLen = q.capacity();
                ArrayDeque<Long> same = BY_LENGTH.get(qLen);
                same.pollFirst(); // the oldest of its length
                if (same.isEmpty()) {
                    BY_LENGTH.remove(qLen);
                }
                pooledBytes -= 4 * qLen;
                q.close();
            }
        }
    }

    /** Bytes waiting here (for tests). */
    static synchronized long pooledBytes() {
        return pooledBytes;
    }

    /**
     * p's memory as a pointer that owns nothing. Kernels address into their operands with
     * getPointer(offset), which on an owning pointer registers a deallocator proxy and a phantom
     * reference for the garbage collector each time (JavaCPP's reference counting): a few hundred
     * bytes and a lock per head of attention or per product block; on a view, a plain object. The
     * view must not outlive p (tensors drop both together).
     */
    static FloatPointer view(FloatPointer p) {
        return new FloatPointer() {
            {
                address = p.address();
                limit = p.limit() > 0 ? p.limit() : p.capacity();
                capacity = p.capacity();
            }
        };
    }
}
