package org.sparkrlhf.gpuexec.cuda;

import static jcuda.driver.JCudaDriver.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;

/**
 * A block of device memory taken from the device's stream-ordered pool on one stream, counted in a
 * model's ledger until it is closed. Copies to and from the host go through that stream too, so
 * they are ordered after every kernel queued before them.
 */
public final class CudaBuffer implements AutoCloseable {
    final CudaStream stream;
    final CUdeviceptr ptr;
    /** The raw device address, for JNA calls (cuBLAS, NCCL). */
    public final long address;
    public final long bytes;
    private final MemoryKind kind;
    private final MemoryLedger ledger;
    private boolean freed;

    private CudaBuffer(CudaStream stream, CUdeviceptr ptr, long bytes, MemoryKind kind, MemoryLedger ledger) {
        this.stream = stream;
        this.ptr = ptr;
        this.address = CudaDriver.address(ptr);
        this.bytes = bytes;
        this.kind = kind;
        this.ledger = ledger;
    }

    public static CudaBuffer allocate(CudaStream stream, long bytes, MemoryKind kind, MemoryLedger ledger) {
        if (bytes < 0) throw new IllegalArgumentException("negative allocation: " + bytes + " bytes");
        stream.context.makeCurrent();
        CUdeviceptr p = new CUdeviceptr();
        // Round up to 256 bytes: every buffer then starts aligned for 16-byte vector loads.
        long rounded = Math.max(256, (bytes + 255) & ~255L);
        try {
            cuMemAllocAsync(p, rounded, stream.stream);
        } catch (RuntimeException e) {
            long[] info = stream.context.memoryInfo();
            throw new IllegalStateException(String.format(
                    "cannot allocate %.1f MiB of %s on %s: %.1f MiB free of %.1f MiB (%s)", bytes / 1048576.0,
                    kind, stream.context, info[0] / 1048576.0, info[1] / 1048576.0, e.getMessage()), e);
        }
        if (ledger != null) ledger.add(kind, bytes);
        return new CudaBuffer(stream, p, bytes, kind, ledger);
    }

    /** A device pointer {@code byteOffset} bytes into this buffer. */
    public CUdeviceptr at(long byteOffset) {
        if (byteOffset < 0 || byteOffset > bytes) throw new IndexOutOfBoundsException(byteOffset + " of " + bytes);
        return byteOffset == 0 ? ptr : ptr.withByteOffset(byteOffset);
    }

    public MemoryKind kind() {
        return kind;
    }

    public void zero() {
        stream.context.makeCurrent();
        cuMemsetD8Async(ptr, (byte) 0, bytes, stream.stream);
    }

    /** Copies {@code data} (its position to its limit) to {@code byteOffset}; the buffer must be direct. */
    public void write(long byteOffset, ByteBuffer data) {
        long n = data.remaining();
        if (byteOffset < 0 || byteOffset + n > bytes) {
            throw new IndexOutOfBoundsException("write of " + n + " bytes at " + byteOffset + " into " + bytes);
        }
        stream.context.makeCurrent();
        cuMemcpyHtoDAsync(at(byteOffset), Pointer.to(data.slice()), n, stream.stream);
        // Host-to-device from pageable memory returns once the source is staged; the stream is
        // synchronized so that the caller may reuse or drop the direct buffer at once.
        cuStreamSynchronize(stream.stream);
    }

    /** Copies {@code n} bytes from {@code byteOffset} into a new direct little-endian buffer. */
    public ByteBuffer read(long byteOffset, long n) {
        if (byteOffset < 0 || n < 0 || byteOffset + n > bytes) {
            throw new IndexOutOfBoundsException("read of " + n + " bytes at " + byteOffset + " from " + bytes);
        }
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException("read of " + n + " bytes at once");
        ByteBuffer out = ByteBuffer.allocateDirect((int) n).order(ByteOrder.LITTLE_ENDIAN);
        stream.context.makeCurrent();
        cuMemcpyDtoHAsync(Pointer.to(out), at(byteOffset), n, stream.stream);
        cuStreamSynchronize(stream.stream);
        return out;
    }

    /** Device-to-device copy on this buffer's stream. */
    public void copyFrom(long dstOffset, CudaBuffer src, long srcOffset, long n) {
        if (n == 0) return;
        if (dstOffset + n > bytes || srcOffset + n > src.bytes) throw new IndexOutOfBoundsException("copy of " + n);
        stream.context.makeCurrent();
        cuMemcpyDtoDAsync(at(dstOffset), src.at(srcOffset), n, stream.stream);
    }

    /**
     * Host copies go through direct buffers of at most this many elements (64 MiB of floats), so
     * that a tensor of any size moves (one direct buffer cannot pass 2 GiB, and should not be the
     * size of a model's largest tensor).
     */
    static final int STAGING_ELEMENTS = 1 << 24;

    public void writeFloats(float[] v) {
        writeFloats(0, v, 0, v.length);
    }

    /** Copies {@code v[at .. at + n)} to {@code byteOffset}. */
    public void writeFloats(long byteOffset, float[] v, int at, int n) {
        for (int done = 0; done < n; ) {
            int k = Math.min(STAGING_ELEMENTS, n - done);
            ByteBuffer b = direct(k * 4L);
            b.asFloatBuffer().put(v, at + done, k);
            write(byteOffset + done * 4L, b);
            done += k;
        }
    }

    /** Copies {@code n} floats from {@code byteOffset} into {@code into[at ..]}. */
    public void readFloats(long byteOffset, float[] into, int at, int n) {
        for (int done = 0; done < n; ) {
            int k = Math.min(STAGING_ELEMENTS, n - done);
            read(byteOffset + done * 4L, k * 4L).asFloatBuffer().get(into, at + done, k);
            done += k;
        }
    }

    public void writeInts(int[] v) {
        for (int done = 0; done < v.length; ) {
            int k = Math.min(STAGING_ELEMENTS, v.length - done);
            ByteBuffer b = direct(k * 4L);
            b.asIntBuffer().put(v, done, k);
            write(done * 4L, b);
            done += k;
        }
    }

    /** Rounds each float to bf16 and copies them. */
    public void writeBf16(float[] v) {
        writeBf16(0, v, 0, v.length);
    }

    /** Rounds {@code v[at .. at + n)} to bf16 and copies them to {@code byteOffset}. */
    public void writeBf16(long byteOffset, float[] v, int at, int n) {
        for (int done = 0; done < n; ) {
            int k = Math.min(STAGING_ELEMENTS, n - done);
            ByteBuffer b = direct(k * 2L);
            for (int i = 0; i < k; i++) b.putShort(i * 2, Bf16.fromFloat(v[at + done + i]));
            write(byteOffset + done * 2L, b);
            done += k;
        }
    }

    /** Writes floats as {@code type} stores them (F32 or BF16). */
    public void writeAs(ElementType type, float[] v) {
        writeAs(type, 0, v, 0, v.length);
    }

    /** Writes {@code v[at .. at + n)} as elements {@code [element, element + n)} of {@code type} (F32 or BF16). */
    public void writeAs(ElementType type, long element, float[] v, int at, int n) {
        switch (type) {
            case F32 -> writeFloats(element * 4L, v, at, n);
            case BF16 -> writeBf16(element * 2L, v, at, n);
            default -> throw new IllegalArgumentException("cannot write floats as " + type);
        }
    }

    public float[] readFloats(int n) {
        float[] out = new float[n];
        readFloats(0, out, 0, n);
        return out;
    }

    public int[] readInts(int n) {
        int[] out = new int[n];
        for (int done = 0; done < n; ) {
            int k = Math.min(STAGING_ELEMENTS, n - done);
            read(done * 4L, k * 4L).asIntBuffer().get(out, done, k);
            done += k;
        }
        return out;
    }

    public float[] readBf16(int n) {
        float[] out = new float[n];
        readBf16(0, out, 0, n);
        return out;
    }

    /** Copies {@code n} bf16 values from {@code byteOffset}, widened, into {@code into[at ..]}. */
    public void readBf16(long byteOffset, float[] into, int at, int n) {
        for (int done = 0; done < n; ) {
            int k = Math.min(STAGING_ELEMENTS, n - done);
            ByteBuffer b = read(byteOffset + done * 2L, k * 2L);
            for (int i = 0; i < k; i++) into[at + done + i] = Bf16.toFloat(b.getShort(i * 2));
            done += k;
        }
    }

    /** Reads n elements of {@code type} (F32 or BF16) as floats. */
    public float[] readAs(ElementType type, int n) {
        float[] out = new float[n];
        readAs(type, 0, out, 0, n);
        return out;
    }

    /** Reads elements {@code [element, element + n)} of {@code type} (F32 or BF16) as floats into {@code into[at ..]}. */
    public void readAs(ElementType type, long element, float[] into, int at, int n) {
        switch (type) {
            case F32 -> readFloats(element * 4L, into, at, n);
            case BF16 -> readBf16(element * 2L, into, at, n);
            default -> throw new IllegalArgumentException("cannot read " + type + " as floats");
        }
    }

    static ByteBuffer direct(long n) {
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException(n + " bytes in one host buffer");
        return ByteBuffer.allocateDirect((int) n).order(ByteOrder.LITTLE_ENDIAN);
    }

    public boolean isFreed() {
        return freed;
    }

    /** Returns the memory to the pool, ordered after the work already queued on the stream. */
    @Override
    public void close() {
        if (freed) return;
        freed = true;
        stream.context.makeCurrent();
        cuMemFreeAsync(ptr, stream.stream);
        if (ledger != null) ledger.remove(kind, bytes);
    }
}
