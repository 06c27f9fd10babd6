package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.Arrays;

/**
 * A CPU tensor: a float[] for F32 and BF16 (BF16 values are floats rounded to bf16 whenever an op
 * writes them), an int[] for I32. Ops reach the data through {@link #read} and {@link #write};
 * write bumps a version so that derived data (the transposed copy a matmul keeps of a weight,
 * the native mirror OpenBLAS reads it from) knows when it is stale.
 *
 * <p>OpenBLAS may also write the native mirror ({@link #nativeForUpdate}): then the mirror holds
 * the newer values and the array gets them back on the next {@link #read} or {@link #write}. So a
 * gradient that only products accumulate into (a weight's, or the input gradient that q, k and v
 * all add to) stays in native memory from its zeroing to the optimizer, with no copy and no add
 * pass per product.
 */
final class CpuTensor implements Tensor {
    private final DType dtype;
    private final int[] shape;
    private float[] floats;
    private int[] ints;
    private long version;
    private float[] transposed;
    private long transposedVersion = -1;
    private FloatPointer mirror;
    /** The mirror's memory as a pointer that owns nothing, handed to the kernels (see {@link NativeBlocks#view}). */
    private FloatPointer view;
    private long mirrorVersion = -1;
    /** Where the current values are: {@link #HEAP}, {@link #NATIVE_NEWER} or {@link #ZERO_PENDING}. */
    private volatile int where = HEAP;
    /** The array holds the current values (and the mirror too when mirrorVersion == version). */
    private static final int HEAP = 0;
    /** The mirror holds newer values than the array (written by OpenBLAS since the last read). */
    private static final int NATIVE_NEWER = 1;
    /** The values are all zeros, written nowhere yet: the first product may overwrite (beta = 0). */
    private static final int ZERO_PENDING = 2;
    /** A product accumulated into the mirror: zeroing then is deferred to it rather than done in the array. */
    private boolean accumulatesNatively;

    CpuTensor(DType dtype, int[] shape) {
        this.dtype = dtype;
        this.shape = shape.clone();
        long n = 1;
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            n *= d;
        }
        if (n > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " is too large for the CPU backend");
        }
        if (dtype == DType.I32) ints = new int[(int) n];
        else floats = new float[(int) n];
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public int[] shape() {
        return shape;
    }

    /** Bumped by every {@link #write}: equal versions mean equal contents. */
    long version() {
        return version;
    }

    int size() {
        return dtype == DType.I32 ? ints.length : floats.length;
    }

    float[] read() {
        if (floats == null) throw new IllegalArgumentException(freedOr("expected a float tensor, got " + describe()));
        if (where != HEAP) toHeap();
        return floats;
    }

    /** Brings the current values into the array: the mirror's newer ones, or pending zeros. */
    private synchronized void toHeap() {
        if (where == NATIVE_NEWER) mirror.position(0).get(floats, 0, floats.length);
        else if (where == ZERO_PENDING) Arrays.fill(floats, 0f);
        where = HEAP;
    }

    float[] write() {
        version++;
        return read();
    }

    int[] readInts() {
        if (ints == null) throw new IllegalArgumentException(freedOr("expected an I32 tensor, got " + describe()));
        return ints;
    }

    int[] writeInts() {
        version++;
        return readInts();
    }

    /**
     * Rounds the values to bf16 after an op wrote them, if this tensor is BF16; as a write, so that a
     * native mirror holding the unrounded values is not taken for current.
     */
    void roundIfBf16() {
        roundIfBf16(0, size());
    }

    /** {@link #roundIfBf16()} of elements {@code [at, at + n)} only (a ranged write). */
    void roundIfBf16(int at, int n) {
        if (dtype == DType.BF16) Bf16.roundInPlace(write(), at, n);
    }

    /**
     * Sets a float tensor to zeros: when products accumulate into this tensor, by noting it (the
     * next product then overwrites rather than adds, and any other op's read fills the zeros in),
     * else in the array.
     */
    synchronized void zero() {
        if (floats == null) read();
        version++;
        if (accumulatesNatively) {
            where = ZERO_PENDING;
        } else {
            where = HEAP;
            Arrays.fill(floats, 0f);
        }
    }

    /** The transpose [cols, rows] of this [rows, cols] matrix, cached until the tensor is written. */
    synchronized float[] transposed(Parallel par) {
        if (transposedVersion != version || transposed == null) {
            int cols = dim(-1);
            int rows = size() / Math.max(cols, 1);
            if (transposed == null) transposed = new float[size()];
            Transpose.run(read(), rows, cols, transposed, par);
            transposedVersion = version;
        }
        return transposed;
    }

    /**
     * A native copy of this float tensor's values for OpenBLAS, copied again only after the tensor
     * was written (weights: once per optimizer step).
     */
    synchronized FloatPointer nativeMirror() {
        if (floats == null) read();
        float[] a = floats;
        takeMirror();
        if (where == ZERO_PENDING) {
            mirror.position(0).zero();
            mirrorVersion = version;
            where = NATIVE_NEWER;
        } else if (where == HEAP && mirrorVersion != version) {
            mirror.position(0).put(a, 0, a.length);
            mirrorVersion = version;
        }
        return view.position(0);
    }

    private void takeMirror() {
        if (mirror != null) return;
        mirror = NativeBlocks.take(floats.length);
        view = NativeBlocks.view(mirror);
    }

    /**
     * The mirror for OpenBLAS to update in place as C of a product that writes every element: beta
     * 0 while the tensor's zeroing is pending (no memset, no copy), else 1 on the current values.
     * The array is stale until the next {@link #read} or {@link #write} copies the mirror back.
     */
    synchronized NativeTarget nativeForUpdate() {
        boolean overwrite = where == ZERO_PENDING;
        if (overwrite) {
            if (floats == null) read();
            takeMirror();
        } else {
            nativeMirror();
        }
        version++;
        mirrorVersion = version;
        where = NATIVE_NEWER;
        accumulatesNatively = true;
        return new NativeTarget(view.position(0), overwrite ? 0f : 1f);
    }

    /**
     * The mirror, current, for OpenBLAS to add into piece by piece (beta = 1; a pending zeroing is
     * written into it first). The array is stale until the next {@link #read} or {@link #write}.
     */
    synchronized FloatPointer nativeAccumulator() {
        FloatPointer m = nativeMirror();
        version++;
        mirrorVersion = version;
        where = NATIVE_NEWER;
        accumulatesNatively = true;
        return m;
    }

    /** Whether the mirror holds the current values (taken before a write that {@link #writeThrough} follows). */
    synchronized boolean mirrorCurrent() {
        return mirror != null && mirrorVersion == version && where != ZERO_PENDING;
    }

    /**
     * After one {@link #write} that changed only the n values at each of offsets, on a tensor whose
     * mirror was current just before it: copies those values into the mirror, current again (a KV
     * cache's new rows, so that decoding never copies the whole cache).
     */
    synchronized void writeThrough(int[] offsets, int n) {
        for (int off : offsets) mirror.position(off).put(floats, off, n);
        mirror.position(0);
        mirrorVersion = version;
    }

    /**
     * The mirror as a buffer when it holds newer values than the array (a product's output not read
     * by Java yet), else null: a row-wise kernel can then read each row from it instead of copying
     * the whole tensor into the array first (the LM head's logits: one pass over them saved).
     */
    synchronized java.nio.FloatBuffer nativeIfNewer() {
        return where == NATIVE_NEWER ? mirror.position(0).asBuffer() : null;
    }

    /**
     * The mirror as a buffer for a kernel that writes every row of this tensor there, and whether
     * it must add to the values it finds (else they are pending zeros it overwrites). Like
     * {@link #nativeForUpdate}: the array is stale until the next {@link #read} or {@link #write}.
     */
    synchronized NativeRows nativeRowsForUpdate() {
        NativeTarget t = nativeForUpdate();
        return new NativeRows(t.c().position(0).asBuffer(), t.beta() != 0f);
    }

    /**
     * The mirror as a buffer for a kernel that overwrites every element there (its current values
     * are not looked at): an op whose output goes to a product next. The array is stale until the
     * next {@link #read} or {@link #write}.
     */
    synchronized java.nio.FloatBuffer nativeForOverwrite() {
        if (floats == null) read();
        takeMirror();
        version++;
        mirrorVersion = version;
        where = NATIVE_NEWER;
        return mirror.position(0).asBuffer();
    }

    /**
     * The mirror as OpenBLAS's C for a product that writes every element of this tensor (beta 0): as
     * {@link #nativeForOverwrite}, the array stale until the next {@link #read} or {@link #write}.
     */
    synchronized FloatPointer nativeOutput() {
        nativeForOverwrite();
        return view.position(0);
    }

    /** A tensor's mirror for row-wise writes, and whether its current values are to be added to. */
    record NativeRows(java.nio.FloatBuffer rows, boolean accumulate) {
    }

    /** Where a product writes C, and the beta it uses there. */
    record NativeTarget(FloatPointer c, float beta) {
    }

    /** Drops the data; returns whether it held any (false for a tensor freed before). */
    synchronized boolean release() {
        boolean held = floats != null || ints != null;
        floats = null;
        ints = null;
        transposed = null;
        where = HEAP;
        if (mirror != null) NativeBlocks.give(mirror);
        mirror = null;
        view = null;
        return held;
    }

    private String freedOr(String message) {
        return floats == null && ints == null ? "tensor " + Arrays.toString(shape) + " was freed" : message;
    }

    @Override
    public String toString() {
        return "CpuTensor" + describe();
    }
}
