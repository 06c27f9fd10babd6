package org.sparkrlhf.gpuexec.backend.cpu;

import org.sparkrlhf.gpuexec.backend.AdamWStep;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.Arrays;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The CPU backend: fp32 compute, parallel loops over rows, heads or tiles on one ForkJoinPool.
 * Every op checks the shapes it is given. Like a device stream, a backend takes ops from one
 * thread at a time (models on different threads use different backends).
 *
 * <p>Two kernel sets ({@link CpuKernels}): FAST runs matrix products on OpenBLAS and is what runs
 * use; REFERENCE is pure Java, the reference the fast kernels are tested against. Threads: the
 * default constructor shares one pool per JVM of {@value #THREADS_PROPERTY} threads (default: the
 * available cores), so that the tasks of a Spark executor together never run more; OpenBLAS
 * itself runs single-threaded inside the pool's threads.
 */
public final class CpuBackend implements Backend {
    /** The system property that sizes the JVM's shared CPU engine pool. */
    public static final String THREADS_PROPERTY = "sparkrlhf.cpu.threads";

    private static ForkJoinPool sharedPool;

    static {
        LoadedSubtypes.load();
    }

    private final ForkJoinPool pool;
    private final AtomicLong liveBytes = new AtomicLong();
    private final AtomicLong peakBytes = new AtomicLong();
    private DType activationType = DType.F32;
    private final boolean ownsPool;
    private final Parallel par;
    private final CpuKernels kernels;
    /** Whether row and elementwise loops run on the Vector API ({@link VectorKernels}): fast kernels, module present. */
    private final boolean vectorRows;
    private final Matmul matmul;
    /** The fast kernels' attention (null with the reference kernels). */
    private final BlasAttention blasAttention;
    private final BlasDecodeAttention blasDecode;

    /** A backend with the default kernels on the pool shared by all default CPU backends of this JVM. */
    public CpuBackend() {
        this(shared(), false, CpuKernels.defaultKernels());
    }

    /** A backend with the default kernels on its own pool of {@code threads} threads (closed with the backend). */
    public CpuBackend(int threads) {
        this(threads, CpuKernels.defaultKernels());
    }

    /** A backend with the given kernels on its own pool of {@code threads} threads (closed with the backend). */
    public CpuBackend(int threads, CpuKernels kernels) {
        this(ownPool(threads), true, kernels, Parallel.SPLIT_WORK);
    }

    /**
     * As {@link #CpuBackend(int, CpuKernels)}, with loops of at least {@code splitWork} operations cut
     * among the threads ({@link Parallel#SPLIT_WORK} otherwise): tests pass 1 to run every loop's
     * parallel path on small shapes.
     */
    public CpuBackend(int threads, CpuKernels kernels, long splitWork) {
        this(ownPool(threads), true, kernels, splitWork);
    }

    private CpuBackend(ForkJoinPool pool, boolean ownsPool, CpuKernels kernels) {
        this(pool, ownsPool, kernels, Parallel.SPLIT_WORK);
    }

    private CpuBackend(ForkJoinPool pool, boolean ownsPool, CpuKernels kernels, long splitWork) {
        kernels.requireAvailable();
        this.pool = pool;
        this.ownsPool = ownsPool;
        this.par = new Parallel(pool, splitWork);
        this.kernels = kernels;
        this.vectorRows = kernels == CpuKernels.FAST && FastExp.VECTOR;
        this.matmul = kernels == CpuKernels.FAST ? new BlasMatmul(par) : new ReferenceMatmul(par);
        this.blasAttention = kernels == CpuKernels.FAST ? new BlasAttention(par) : null;
        this.blasDecode = kernels == CpuKernels.FAST ? new BlasDecodeAttention(par) : null;
    }

    private static ForkJoinPool ownPool(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        return new ForkJoinPool(threads);
    }

    private static synchronized ForkJoinPool shared() {
        if (sharedPool == null) {
            int threads = Runtime.getRuntime().availableProcessors();
            String v = System.getProperty(THREADS_PROPERTY);
            if (v != null && !v.isBlank()) {
                try {
                    threads = Integer.parseInt(v.trim());
                } catch (NumberFormatException e) {
                    threads = 0;
                }
                if (threads < 1) throw new IllegalArgumentException("-D" + THREADS_PROPERTY + "=" + v + ": expected a thread count >= 1");
            }
            sharedPool = new ForkJoinPool(threads, p -> {
                var t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
                t.setDaemon(true);
                t.setName("cpu-backend-" + t.getPoolIndex());
                return t;
            }, null, false);
        }
        return sharedPool;
    }

    /** The kernels this backend runs. */
    public CpuKernels kernels() {
        return kernels;
    }

    @Override
    public String name() {
        return "cpu(" + par.threads() + " threads, " + (kernels == CpuKernels.FAST ? "openblas" : "reference") + " kernels"
                + (kernels == CpuKernels.FAST && FastExp.VECTOR ? ", vector exp" : "") + ")";
    }

    // ---------------------------------------------------------------- checks

    private static CpuTensor t(Tensor x, String what) {
        if (x == null) throw new IllegalArgumentException(what + " is null");
        if (!(x instanceof CpuTensor c)) throw new IllegalArgumentException(what + " is not a CPU tensor: " + x);
        return c;
    }

    private static CpuTensor opt(Tensor x, String what) {
        return x == null ? null : t(x, what);
    }

    /**
     * A broken precondition of {@code op}. Checks read {@code if (!ok) throw bad(op, message)}, not a
     * require(ok, op, message) method: its message would be built on every call, in the hot loops too.
     */
    private static IllegalArgumentException bad(String op, String message) {
        return new IllegalArgumentException(op + ": " + message);
    }

    private static void sameSize(String op, CpuTensor a, CpuTensor b) {
        if (a.size() != b.size()) throw bad(op, "sizes differ: " + a.describe() + " vs " + b.describe());
    }

    // ---------------------------------------------------------------- memory

    /**
     * Stores activations and KV caches as {@code type} (see {@link Backend#activationType}): BF16
     * emulates a bf16 mode on the CPU, every op rounding what it writes to a BF16 tensor.
     */
    public CpuBackend storeActivationsAs(DType type) {
        if (!type.isFloat()) throw new IllegalArgumentException("activations are F32 or BF16, not " + type);
        activationType = type;
        return this;
    }

    @Override
    public DType activationType() {
        return activationType;
    }

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        CpuTensor t = new CpuTensor(dtype, shape);
        peakBytes.accumulateAndGet(liveBytes.addAndGet(ledgerBytes(t)), Math::max);
        return t;
    }

    @Override
    public void free(Tensor x) {
        if (x == null) return;
        CpuTensor c = t(x, "tensor");
        long bytes = ledgerBytes(c);
        if (c.release()) liveBytes.addAndGet(-bytes);
    }

    /** Bytes a device storing the type natively holds for t (the CPU keeps BF16 values as rounded floats). */
    private static long ledgerBytes(CpuTensor t) {
        return (long) t.dtype().bytes() * t.numel();
    }

    /**
     * The allocation ledger: bytes of the tensors allocated on this backend and not yet freed, as
     * a device would hold them (2 bytes a BF16 element, 4 for F32 and I32).
     */
    public long liveBytes() {
        return liveBytes.get();
    }

    /** The most {@link #liveBytes} held at once since the backend started or the last {@link #resetPeakBytes}. */
    public long peakBytes() {
        return peakBytes.get();
    }

    /** Starts a new peak at the bytes live now (to measure one call's peak). */
    public void resetPeakBytes() {
        peakBytes.set(liveBytes.get());
    }

    @Override
    public void uploadRange(Tensor dst, long at, float[] src, int from, int n) {
        CpuTensor d = t(dst, "dst");
        checkRange("upload", d, at, n);
        if (!(from >= 0 && from + n <= src.length)) throw bad("upload", "values " + from + " .. " + (from + n) + " of " + src.length);
        float[] a = d.write();
        System.arraycopy(src, from, a, (int) at, n);
        d.roundIfBf16((int) at, n);
    }

    /** Elements [at, at + n) lie in the tensor (a float tensor unless the op takes ints). */
    private static void checkRange(String op, CpuTensor t, long at, long n) {
        if (!(at >= 0 && n >= 0 && at + n <= t.numel())) throw bad(op, "elements " + at + " .. " + (at + n) + " of " + t.describe());
    }

    @Override
    public void upload(Tensor dst, int[] src) {
        CpuTensor d = t(dst, "dst");
        int[] a = d.writeInts();
        if (src.length != a.length) throw bad("upload", src.length + " values for " + d.describe());
        System.arraycopy(src, 0, a, 0, a.length);
    }

    @Override
    public void downloadRange(Tensor src, long at, float[] into, int to, int n) {
        CpuTensor s = t(src, "src");
        checkRange("download", s, at, n);
        System.arraycopy(s.read(), (int) at, into, to, n);
    }

    @Override
    public int[] downloadInts(Tensor src) {
        return t(src, "src").readInts().clone();
    }

    @Override
    public void synchronize() {
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void zero(Tensor x) {
        CpuTensor c = t(x, "t");
        if (c.dtype() == DType.I32) Arrays.fill(c.writeInts(), 0);
        else c.zero();
    }

    @Override
    public void copyRange(Tensor dst, long dstAt, Tensor src, long srcAt, long n) {
        CpuTensor d = t(dst, "dst"), s = t(src, "src");
        checkRange("copy", d, dstAt, n);
        checkRange("copy", s, srcAt, n);
        if (d.dtype() == DType.I32 || s.dtype() == DType.I32) {
            if (d.dtype() != s.dtype()) throw bad("copy", "I32 copies only to I32: " + s.describe() + " -> " + d.describe());
            System.arraycopy(s.readInts(), (int) srcAt, d.writeInts(), (int) dstAt, (int) n);
            return;
        }
        System.arraycopy(s.read(), (int) srcAt, d.write(), (int) dstAt, (int) n);
        d.roundIfBf16((int) dstAt, (int) n);
    }

    @Override
    public void scale(Tensor x, float s) {
        CpuTensor c = t(x, "t");
        float[] a = c.write();
        par.range(a.length, 1, (lo, hi) -> {
            for (int i = lo; i < hi; i++) a[i] *= s;
        });
        c.roundIfBf16();
    }

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        CpuTensor o = t(out, "out"), x = t(a, "a"), y = t(b, "b");
        sameSize("add", o, x);
        sameSize("add", o, y);
        float[] xa = x.read(), ya = y.read(), oa = o.write();
        par.range(oa.length, 1, (lo, hi) -> {
            for (int i = lo; i < hi; i++) oa[i] = xa[i] + ya[i];
        });
        o.roundIfBf16();
    }

    @Override
    public void addInt(Tensor x, int delta) {
        int[] a = t(x, "t").writeInts();
        for (int i = 0; i < a.length; i++) a[i] += delta;
    }

    @Override
    public void sumSquares(Tensor out, Tensor x) {
        CpuTensor o = t(out, "out");
        if (o.size() != 1) throw bad("sumSquares", "out must have one element, got " + o.describe());
        float[] a = t(x, "x").read();
        int chunks = Math.max(1, Math.min(64, a.length / 4096));
        double[] partial = new double[chunks];
        par.range(chunks, a.length / chunks, (lo, hi) -> {
            for (int c = lo; c < hi; c++) {
                int i0 = (int) ((long) a.length * c / chunks), i1 = (int) ((long) a.length * (c + 1) / chunks);
                double s = 0;
                for (int i = i0; i < i1; i++) s += (double) a[i] * a[i];
                partial[c] = s;
            }
        });
        double s = 0;
        for (double p : partial) s += p;
        o.write()[0] += (float) s;
    }

    // ---------------------------------------------------------------- layers

    @Override
    public void embedding(Tensor out, Tensor ids, Tensor table) {
        CpuTensor o = t(out, "out"), w = t(table, "table");
        int[] id = t(ids, "ids").readInts();
        int V = w.dim(0), C = w.dim(-1);
        if (o.size() != id.length * C) throw bad("embedding", "out " + o.describe() + " for " + id.length + " ids of width " + C);
        float[] wa = w.read(), oa = o.write();
        for (int n = 0; n < id.length; n++) {
            if (!(id[n] >= 0 && id[n] < V)) throw bad("embedding", "token id " + id[n] + " at row " + n + " outside the vocabulary [0, " + V + ")");
            System.arraycopy(wa, id[n] * C, oa, n * C, C);
        }
        o.roundIfBf16();
    }

    @Override
    public void embeddingBackward(Tensor dTable, Tensor ids, Tensor dOut) {
        CpuTensor dw = t(dTable, "dTable"), g = t(dOut, "dOut");
        int[] id = t(ids, "ids").readInts();
        int C = dw.dim(-1);
        if (g.size() != id.length * C) throw bad("embeddingBackward", "dOut " + g.describe() + " for " + id.length + " ids");
        float[] dwa = dw.write(), ga = g.read();
        // parallel over column blocks: rows with the same id never race
        int blocks = (C + 15) / 16;
        par.range(blocks, (long) id.length * 16, (lo, hi) -> {
            int c0 = lo * 16, c1 = Math.min(C, hi * 16);
            for (int n = 0; n < id.length; n++) {
                int r = id[n] * C, s = n * C;
                for (int c = c0; c < c1; c++) dwa[r + c] += ga[s + c];
            }
        });
    }

    @Override
    public void matmul(Tensor out, Tensor in, Tensor weight, Tensor bias) {
        CpuTensor o = t(out, "out"), x = t(in, "in"), w = t(weight, "weight"), b = opt(bias, "bias");
        int N = checkProduct(o, x, w, b);
        matmul.forward(o, x, w, b == null ? null : b.read(), N, w.dim(1), w.dim(0));
        o.roundIfBf16();
    }

    @Override
    public void matmuls(Tensor[] outs, Tensor in, Tensor[] weights, Tensor[] biases) {
        int P = outs.length;
        if (weights.length != P || (biases != null && biases.length != P)) {
            throw bad("matmuls", P + " outputs, " + weights.length + " weights, " + (biases == null ? "no" : biases.length) + " biases");
        }
        CpuTensor x = t(in, "in");
        CpuTensor[] o = new CpuTensor[P], w = new CpuTensor[P];
        float[][] b = new float[P][];
        int[] oc = new int[P];
        for (int i = 0; i < P; i++) {
            o[i] = t(outs[i], "out");
            w[i] = t(weights[i], "weight");
            CpuTensor bi = biases == null ? null : opt(biases[i], "bias");
            checkProduct(o[i], x, w[i], bi);
            if (o[i] == x) throw bad("matmuls", "an output is the input");
            b[i] = bi == null ? null : bi.read();
            oc[i] = w[i].dim(0);
        }
        int IC = x.dim(-1);
        matmul.forward(o, x, w, b, x.rows(), IC, oc);
        for (CpuTensor oi : o) oi.roundIfBf16();
    }

    /** Checks out = in @ weight^T + bias's shapes; returns the rows. */
    private static int checkProduct(CpuTensor o, CpuTensor x, CpuTensor w, CpuTensor b) {
        if (w.rank() != 2) throw bad("matmul", "weight must be [OUT, IN], got " + w.describe());
        int OC = w.dim(0), IC = w.dim(1);
        if (x.dim(-1) != IC) throw bad("matmul", "in " + x.describe() + " does not match weight " + w.describe());
        int N = x.rows();
        if (!(o.size() == N * OC && o.dim(-1) == OC)) throw bad("matmul", "out " + o.describe() + " for " + N + " rows of " + OC);
        if (!(b == null || b.size() == OC)) throw bad("matmul", "bias " + (b == null ? "" : b.describe()) + " for " + OC + " outputs");
        return N;
    }

    @Override
    public void matmulBackward(Tensor dIn, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor in, Tensor weight) {
        CpuTensor g = t(dOut, "dOut"), x = t(in, "in"), w = t(weight, "weight");
        CpuTensor dx = opt(dIn, "dIn"), dw = opt(dWeight, "dWeight"), db = opt(dBias, "dBias");
        int OC = w.dim(0), IC = w.dim(1);
        int N = x.rows();
        if (!(x.dim(-1) == IC && g.size() == N * OC)) throw bad("matmulBackward",
                "dOut " + g.describe() + ", in " + x.describe() + ", weight " + w.describe() + " disagree");
        if (dx != null) sameSize("matmulBackward dIn", dx, x);
        if (dw != null) sameSize("matmulBackward dWeight", dw, w);
        matmul.backward(dx, dw, g, x, w, N, IC, OC);
        if (db != null) {
            if (db.size() != OC) throw bad("matmulBackward", "dBias " + db.describe() + " for " + OC + " outputs");
            float[] dba = db.write(), ga = g.read();
            par.range(OC, N, (lo, hi) -> {
                for (int o = lo; o < hi; o++) {
                    float s = 0f;
                    for (int n = 0; n < N; n++) s += ga[n * OC + o];
                    dba[o] += s;
                }
            });
        }
    }

    @Override
    public void rmsnorm(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps) {
        CpuTensor o = t(out, "out"), r = t(rstd, "rstd"), x = t(in, "in"), w = t(weight, "weight");
        int C = w.size(), N = x.rows();
        if (x.dim(-1) != C) throw bad("rmsnorm", "in " + x.describe() + " vs weight " + w.describe());
        sameSize("rmsnorm", o, x);
        if (r.size() != N) throw bad("rmsnorm", "rstd " + r.describe() + " for " + N + " rows");
        float[] oa = o.write(), ra = r.write(), xa = x.read(), wa = w.read();
        boolean fast = kernels == CpuKernels.FAST; // the sums of squares on FastExp.dot (vectorised), else in index order
        par.range(N, C * 3L, (lo, hi) -> {
            for (int n = lo; n < hi; n++) {
                int off = n * C;
                float ss = 0f;
                if (fast) ss = FastExp.dot(xa, off, xa, off, C);
                else for (int c = 0; c < C; c++) ss += xa[off + c] * xa[off + c];
                float rs = (float) (1.0 / Math.sqrt(ss / C + eps));
                ra[n] = rs;
                if (vectorRows) VectorKernels.scaleRow(oa, xa, off, wa, rs, C);
                else for (int c = 0; c < C; c++) oa[off + c] = wa[c] * (xa[off + c] * rs);
            }
        });
        o.roundIfBf16();
    }

    @Override
    public void rmsnormBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight, Tensor rstd) {
        CpuTensor g = t(dOut, "dOut"), x = t(in, "in"), w = t(weight, "weight"), r = t(rstd, "rstd");
        CpuTensor dx = opt(dIn, "dIn"), dw = opt(dWeight, "dWeight");
        int C = w.size(), N = x.rows();
        sameSize("rmsnormBackward", g, x);
        float[] ga = g.read(), xa = x.read(), wa = w.read(), ra = r.read();
        if (dx != null) {
            sameSize("rmsnormBackward dIn", dx, x);
            float[] dxa = dx.write();
            boolean fast = kernels == CpuKernels.FAST; // the dot on FastExp.dot (vectorised), else in index order
            par.range(N, C * 4L, (lo, hi) -> {
                float[] gw = new float[C]; // g * w of a row, at index 0
                for (int n = lo; n < hi; n++) {
                    int off = n * C;
                    float rs = ra[n];
                    if (vectorRows) VectorKernels.multiplyRow(gw, ga, off, wa, C);
                    else for (int c = 0; c < C; c++) gw[c] = ga[off + c] * wa[c];
                    float dot = 0f;
                    if (fast) dot = FastExp.dot(gw, 0, xa, off, C);
                    else for (int c = 0; c < C; c++) dot += gw[c] * xa[off + c];
                    float k = dot * rs * rs * rs / C;
                    if (vectorRows) VectorKernels.rmsnormGradientRow(dxa, gw, xa, off, rs, k, C);
                    else for (int c = 0; c < C; c++) dxa[off + c] += gw[c] * rs - xa[off + c] * k;
                }
            });
        }
        if (dw != null) {
            if (dw.size() != C) throw bad("rmsnormBackward", "dWeight " + dw.describe() + " for width " + C);
            float[] dwa = dw.write();
            int blocks = (C + 15) / 16;
            par.range(blocks, N * 16L, (lo, hi) -> {
                int c0 = lo * 16, c1 = Math.min(C, hi * 16);
                for (int n = 0; n < N; n++) {
                    int off = n * C;
                    float rs = ra[n];
                    if (vectorRows) VectorKernels.rmsnormWeightGradientRow(dwa, ga, xa, off, rs, c0, c1);
                    else for (int c = c0; c < c1; c++) dwa[c] += ga[off + c] * xa[off + c] * rs;
                }
            });
        }
    }

    @Override
    public void rotary(Tensor x, Tensor positions, Tensor invFreq, int heads) {
        rope("rotary", x, positions, invFreq, heads, 1f);
    }

    @Override
    public void rotaryBackward(Tensor dx, Tensor positions, Tensor invFreq, int heads) {
        rope("rotaryBackward", dx, positions, invFreq, heads, -1f);
    }

    private void rope(String op, Tensor x, Tensor positions, Tensor invFreq, int heads, float sign) {
        CpuTensor c = t(x, "x");
        int[] pos = t(positions, "positions").readInts();
        float[] inv = t(invFreq, "invFreq").read();
        int half = inv.length, D = 2 * half;
        int N = pos.length;
        if (c.size() != N * heads * D) throw bad(op, c.describe() + " is not " + N + " rows of " + heads + " heads of " + D);
        float[] a = c.write();
        int width = heads * D;
        // cos and sin of each position's angles, computed once per distinct position: a batch's rows
        // share positions 0 .. T-1, and Math.cos and sin cost more than the rotation of all the heads
        int maxPos = -1;
        boolean negative = false;
        for (int p : pos) {
            maxPos = Math.max(maxPos, p);
            negative |= p < 0;
        }
        // by position when there are fewer positions than rows (prefills, training batches), else by row (decode steps)
        boolean[] used = !negative && maxPos < N ? new boolean[maxPos + 1] : null;
        if (used != null) for (int p : pos) used[p] = true;
        float[] cos = new float[(used == null ? N : maxPos + 1) * half], sin = new float[cos.length];
        par.range(cos.length / half, half * 2L * 20, (lo, hi) -> {
            for (int t = lo; t < hi; t++) {
                if (used != null && !used[t]) continue;
                int p = used == null ? pos[t] : t;
                for (int i = 0; i < half; i++) {
                    float angle = p * inv[i];
                    cos[t * half + i] = (float) Math.cos(angle);
                    sin[t * half + i] = sign * (float) Math.sin(angle);
                }
            }
        });
        par.range(N, (long) width * 4, (lo, hi) -> {
            for (int n = lo; n < hi; n++) {
                int cs = (used == null ? n : pos[n]) * half;
                for (int h = 0; h < heads; h++) {
                    int off = n * width + h * D;
                    if (vectorRows) {
                        VectorKernels.rotate(a, off, cos, sin, cs, half);
                        continue;
                    }
                    for (int i = 0; i < half; i++) {
                        float x1 = a[off + i], x2 = a[off + i + half];
                        a[off + i] = x1 * cos[cs + i] - x2 * sin[cs + i];
                        a[off + i + half] = x2 * cos[cs + i] + x1 * sin[cs + i];
                    }
                }
            }
        });
        c.roundIfBf16();
    }

    private static int[] attentionDims(String op, CpuTensor q, CpuTensor k, CpuTensor v, CpuTensor mask, int heads, int kvHeads) {
        if (mask.rank() != 2) throw bad(op, "mask must be [B, T], got " + mask.describe());
        if (!(heads > 0 && kvHeads > 0 && heads % kvHeads == 0)) throw bad(op, heads + " heads are not a multiple of " + kvHeads + " kv heads");
        int B = mask.dim(0), T = mask.dim(1);
        int width = q.size() / Math.max(1, B * T);
        if (!(q.size() == B * T * width && width % heads == 0)) throw bad(op, "q " + q.describe() + " for mask " + mask.describe() + " and " + heads + " heads");
        int D = width / heads;
        if (!(k.size() == B * T * kvHeads * D && v.size() == k.size())) throw bad(op,
                "k " + k.describe() + " / v " + v.describe() + " for " + kvHeads + " kv heads of " + D);
        return new int[]{B, T, D};
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor mask, int heads, int kvHeads, int slidingWindow) {
        CpuTensor o = t(out, "out"), l = t(lse, "lse"), qq = t(q, "q"), kk = t(k, "k"), vv = t(v, "v"), m = t(mask, "mask");
        int[] d = attentionDims("attention", qq, kk, vv, m, heads, kvHeads);
        sameSize("attention out", o, qq);
        if (l.size() != d[0] * heads * d[1]) throw bad("attention", "lse " + l.describe() + " must be [B, heads, T]");
        if (blasAttention != null) {
            blasAttention.forward(o, l.write(), qq, kk, vv, m.readInts(), d[0], d[1], heads, kvHeads, d[2], slidingWindow);
        } else {
            Attention.forward(o.write(), l.write(), qq.read(), kk.read(), vv.read(), m.readInts(),
                    d[0], d[1], heads, kvHeads, d[2], slidingWindow, par);
        }
        o.roundIfBf16();
    }

    @Override
    public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor out, Tensor lse,
                                  Tensor q, Tensor k, Tensor v, Tensor mask, int heads, int kvHeads, int slidingWindow) {
        CpuTensor qq = t(q, "q"), kk = t(k, "k"), vv = t(v, "v"), m = t(mask, "mask");
        int[] d = attentionDims("attentionBackward", qq, kk, vv, m, heads, kvHeads);
        CpuTensor dqq = t(dq, "dq"), dkk = t(dk, "dk"), dvv = t(dv, "dv"), g = t(dOut, "dOut"), o = t(out, "out"), l = t(lse, "lse");
        sameSize("attentionBackward dq", dqq, qq);
        sameSize("attentionBackward dk", dkk, kk);
        sameSize("attentionBackward dv", dvv, vv);
        sameSize("attentionBackward dOut", g, qq);
        if (blasAttention != null) {
            blasAttention.backward(dqq, dkk, dvv, g, o.read(), l.read(), qq, kk, vv, m.readInts(),
                    d[0], d[1], heads, kvHeads, d[2], slidingWindow);
        } else {
            Attention.backward(dqq.write(), dkk.write(), dvv.write(), g.read(), o.read(), l.read(),
                    qq.read(), kk.read(), vv.read(), m.readInts(), d[0], d[1], heads, kvHeads, d[2], slidingWindow, par);
        }
    }

    /** A float tensor's current values for a row- or block-wise kernel: from the native copy when it is newer. */
    private static FastKernels.Rows rows(CpuTensor t) {
        java.nio.FloatBuffer n = t.nativeIfNewer();
        return n != null ? FastKernels.Rows.of(n) : FastKernels.Rows.of(t.read());
    }

    @Override
    public void swiglu(Tensor out, Tensor gate, Tensor up) {
        CpuTensor o = t(out, "out"), g = t(gate, "gate"), u = t(up, "up");
        sameSize("swiglu", o, g);
        sameSize("swiglu", o, u);
        if (kernels == CpuKernels.FAST) {
            // read where the gate and up products left them; an fp32 output goes where the down
            // product reads it (a bf16 one is rounded in the array)
            FastKernels.Rows gr = rows(g), ur = rows(u);
            FastKernels.RowSink sink = o.dtype() == DType.F32 ? FastKernels.RowSink.of(o.nativeForOverwrite())
                    : FastKernels.RowSink.of(o.write());
            FastKernels.swiglu(sink, gr, ur, o.size(), par);
            o.roundIfBf16();
            return;
        }
        float[] oa = o.write(), ga = g.read(), ua = u.read();
        par.range(oa.length, 20, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                float x = ga[i];
                oa[i] = x / (1f + (float) Math.exp(-x)) * ua[i];
            }
        });
        o.roundIfBf16();
    }

    @Override
    public void swigluBackward(Tensor dGate, Tensor dUp, Tensor dOut, Tensor gate, Tensor up) {
        CpuTensor dg = t(dGate, "dGate"), du = t(dUp, "dUp"), g = t(dOut, "dOut"), ga = t(gate, "gate"), ua = t(up, "up");
        sameSize("swigluBackward", dg, ga);
        sameSize("swigluBackward", du, ua);
        sameSize("swigluBackward", g, ga);
        if (kernels == CpuKernels.FAST) {
            // dOut from where the down product's backward left it; dGate and dUp where the gate and
            // up products' backward read them (a pending zeroing there costs nothing)
            FastKernels.Rows go = rows(g), gv = rows(ga), uv = rows(ua);
            CpuTensor.NativeRows dgn = dg.nativeRowsForUpdate(), dun = du.nativeRowsForUpdate();
            FastKernels.swigluBackward(dgn.accumulate() ? FastKernels.Rows.of(dgn.rows()) : null, FastKernels.RowSink.of(dgn.rows()),
                    dun.accumulate() ? FastKernels.Rows.of(dun.rows()) : null, FastKernels.RowSink.of(dun.rows()),
                    go, gv, uv, dg.size(), par);
            return;
        }
        float[] dga = dg.write(), dua = du.write(), go = g.read(), gv = ga.read(), uv = ua.read();
        par.range(dga.length, 20, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                float x = gv[i];
                float s = 1f / (1f + (float) Math.exp(-x));
                float silu = x * s;
                dua[i] += go[i] * silu;
                dga[i] += go[i] * uv[i] * s * (1f + x * (1f - s));
            }
        });
    }

    // ---------------------------------------------------------------- heads and losses

    @Override
    public void logSoftmax(Tensor out, Tensor logits) {
        CpuTensor o = t(out, "out"), z = t(logits, "logits");
        sameSize("logSoftmax", o, z);
        int V = z.dim(-1), N = z.rows();
        float[] oa = o.write(), za = z.read();
        if (kernels == CpuKernels.FAST) {
            FastKernels.logSoftmax(oa, za, N, V, par);
            return;
        }
        par.range(N, V * 3L, (lo, hi) -> {
            for (int n = lo; n < hi; n++) {
                float l = logSumExp(za, n * V, V);
                for (int j = 0; j < V; j++) oa[n * V + j] = za[n * V + j] - l;
            }
        });
    }

    private static float logSumExp(float[] z, int off, int V) {
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < V; j++) max = Math.max(max, z[off + j]);
        float sum = 0f;
        for (int j = 0; j < V; j++) sum += (float) Math.exp(z[off + j] - max);
        return max + (float) Math.log(sum);
    }

    @Override
    public void tokenLogprobs(Tensor logprobs, Tensor entropy, Tensor lse, Tensor logits, Tensor targets) {
        CpuTensor z = t(logits, "logits"), lp = t(logprobs, "logprobs"), l = t(lse, "lse"), e = opt(entropy, "entropy");
        int[] tg = t(targets, "targets").readInts();
        int V = z.dim(-1), N = z.rows();
        if (!(tg.length == N && lp.size() == N && l.size() == N && (e == null || e.size() == N))) throw bad("tokenLogprobs",
                "logits " + z.describe() + " need targets, logprobs, lse and entropy of " + N);
        float[] lpa = lp.write(), la = l.write(), ea = e == null ? null : e.write();
        if (kernels == CpuKernels.FAST) {
            FastKernels.tokenLogprobs(lpa, ea, la, rows(z), tg, N, V, par);
            return;
        }
        float[] za = z.read();
        par.range(N, V * 4L, (lo, hi) -> {
            for (int n = lo; n < hi; n++) {
                int off = n * V;
                if (!(tg[n] >= 0 && tg[n] < V)) throw bad("tokenLogprobs", "target id " + tg[n] + " at row " + n + " outside [0, " + V + ")");
                float lsen = logSumExp(za, off, V);
                la[n] = lsen;
                lpa[n] = za[off + tg[n]] - lsen;
                if (ea != null) {
                    float h = 0f;
                    for (int j = 0; j < V; j++) {
                        float logp = za[off + j] - lsen;
                        h -= (float) Math.exp(logp) * logp;
                    }
                    ea[n] = h;
                }
            }
        });
    }

    @Override
    public void tokenLogprobsBackward(Tensor dLogits, Tensor dLogprobs, Tensor dEntropy, Tensor logits, Tensor lse, Tensor entropy, Tensor targets) {
        CpuTensor dz = t(dLogits, "dLogits"), z = t(logits, "logits"), l = t(lse, "lse");
        CpuTensor dlp = opt(dLogprobs, "dLogprobs"), de = opt(dEntropy, "dEntropy"), e = opt(entropy, "entropy");
        if (!(de == null || e != null)) throw bad("tokenLogprobsBackward", "dEntropy needs the saved entropy");
        sameSize("tokenLogprobsBackward", dz, z);
        int[] tg = t(targets, "targets").readInts();
        int V = z.dim(-1), N = z.rows();
        float[] la = l.read();
        float[] dlpa = dlp == null ? null : dlp.read(), dea = de == null ? null : de.read(), ea = e == null ? null : e.read();
        if (kernels == CpuKernels.FAST) {
            // the logits as the head's product left them, and dLogits written where the head's
            // backward product reads it: no whole-tensor copies between the array and native memory
            FastKernels.Rows zr = rows(z);
            CpuTensor.NativeRows out = dz.nativeRowsForUpdate();
            FastKernels.tokenLogprobsBackward(out.accumulate() ? FastKernels.Rows.of(out.rows()) : null,
                    FastKernels.RowSink.of(out.rows()), dlpa, dea, zr, la, ea, tg, N, V, par);
            return;
        }
        float[] dza = dz.write(), za = z.read();
        par.range(N, V * 4L, (lo, hi) -> {
            for (int n = lo; n < hi; n++) {
                float gl = dlpa == null ? 0f : dlpa[n];
                float ge = dea == null ? 0f : dea[n];
                if (gl == 0f && ge == 0f) continue;
                int off = n * V;
                float h = ea == null ? 0f : ea[n];
                for (int j = 0; j < V; j++) {
                    float logp = za[off + j] - la[n];
                    float p = (float) Math.exp(logp);
                    float g = -gl * p;
                    if (ge != 0f) g -= ge * p * (logp + h);
                    dza[off + j] += g;
                }
                dza[off + tg[n]] += gl;
            }
        });
    }

    @Override
    public void gatherRows(Tensor out, Tensor in, Tensor rows) {
        CpuTensor o = t(out, "out"), x = t(in, "in");
        int[] r = t(rows, "rows").readInts();
        int C = x.dim(-1), N = x.rows();
        if (o.size() != r.length * C) throw bad("gatherRows", "out " + o.describe() + " for " + r.length + " rows of " + C);
        float[] oa = o.write(), xa = x.read();
        for (int m = 0; m < r.length; m++) {
            if (!(r[m] >= 0 && r[m] < N)) throw bad("gatherRows", "row " + r[m] + " outside [0, " + N + ")");
            System.arraycopy(xa, r[m] * C, oa, m * C, C);
        }
        o.roundIfBf16();
    }

    @Override
    public void gatherRowsBackward(Tensor dIn, Tensor dOut, Tensor rows) {
        CpuTensor dx = t(dIn, "dIn"), g = t(dOut, "dOut");
        int[] r = t(rows, "rows").readInts();
        int C = dx.dim(-1), N = dx.rows();
        if (g.size() != r.length * C) throw bad("gatherRowsBackward", "dOut " + g.describe() + " for " + r.length + " rows of " + C);
        float[] dxa = dx.write(), ga = g.read();
        for (int m = 0; m < r.length; m++) {
            if (!(r[m] >= 0 && r[m] < N)) throw bad("gatherRowsBackward", "row " + r[m] + " outside [0, " + N + ")");
            for (int c = 0; c < C; c++) dxa[r[m] * C + c] += ga[m * C + c];
        }
    }

    // ---------------------------------------------------------------- optimizer

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep s) {
        CpuTensor p = t(param, "param"), g = t(grad, "grad"), mm = t(m, "m"), vv = t(v, "v");
        sameSize("adamw grad", p, g);
        sameSize("adamw m", p, mm);
        sameSize("adamw v", p, vv);
        float[] pa = p.write(), ga = g.read(), ma = mm.write(), va = vv.write();
        double bc1 = 1.0 - Math.pow(s.beta1(), s.step());
        double bc2 = 1.0 - Math.pow(s.beta2(), s.step());
        float stepSize = (float) (s.lr() / bc1);
        float bc2Sqrt = (float) Math.sqrt(bc2);
        float decay = 1f - s.lr() * s.weightDecay();
        float b1 = s.beta1(), b2 = s.beta2(), eps = s.eps(), gs = s.gradScale();
        par.range(pa.length, 12, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                float gi = ga[i] * gs;
                ma[i] = b1 * ma[i] + (1f - b1) * gi;
                va[i] = b2 * va[i] + (1f - b2) * gi * gi;
                float denom = (float) Math.sqrt(va[i]) / bc2Sqrt + eps;
                pa[i] = pa[i] * decay - stepSize * ma[i] / denom;
            }
        });
        p.roundIfBf16();
    }

    // ---------------------------------------------------------------- KV cache, decode, sampling

    @Override
    public void kvAppend(Tensor cache, Tensor x, Tensor slots, int firstRow) {
        CpuTensor c = t(cache, "cache"), xx = t(x, "x");
        int[] sl = t(slots, "slots").readInts();
        if (!(c.rank() == 2 || c.rank() == 3)) throw bad("kvAppend", "cache must be [B, S, C] or [B, S], got " + c.describe());
        int S = c.dim(1), C = c.rank() == 3 ? c.dim(2) : 1, B = sl.length;
        if (!(firstRow >= 0 && firstRow + B <= c.dim(0))) throw bad("kvAppend", "rows " + firstRow + ".." + (firstRow + B - 1) + " outside the cache " + c.describe());
        int Tn = xx.size() / Math.max(1, B * C);
        if (xx.size() != B * Tn * C) throw bad("kvAppend", "x " + xx.describe() + " is not " + B + " x Tn rows of " + C);
        if (!(c.dtype() == DType.I32 ? xx.dtype() == DType.I32 : xx.dtype() != DType.I32)) throw bad("kvAppend",
                "dtypes " + xx.describe() + " -> " + c.describe());
        for (int b = 0; b < B; b++) {
            if (!(sl[b] >= 0 && sl[b] + Tn <= S)) throw bad("kvAppend", "sequence " + b + ": slots " + sl[b] + ".." + (sl[b] + Tn - 1) + " outside the cache of " + S);
        }
        if (c.dtype() == DType.I32) {
            int[] ca = c.writeInts(), xa = xx.readInts();
            for (int b = 0; b < B; b++) System.arraycopy(xa, b * Tn * C, ca, ((firstRow + b) * S + sl[b]) * C, Tn * C);
            return;
        }
        boolean mirrored = c.mirrorCurrent();
        float[] ca = c.write(), xa = xx.read();
        boolean bf16 = c.dtype() == DType.BF16;
        int[] written = new int[B];
        for (int b = 0; b < B; b++) {
            int dst = ((firstRow + b) * S + sl[b]) * C, src = b * Tn * C;
            written[b] = dst;
            if (!bf16) System.arraycopy(xa, src, ca, dst, Tn * C);
            else for (int i = 0; i < Tn * C; i++) ca[dst + i] = Bf16.round(xa[src + i]);
        }
        if (mirrored) c.writeThrough(written, Tn * C);
    }

    @Override
    public void decodeAttention(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor cacheMask, Tensor slots,
                                int heads, int kvHeads, int slidingWindow) {
        CpuTensor o = t(out, "out"), qq = t(q, "q"), kc = t(kCache, "kCache"), vc = t(vCache, "vCache"), m = t(cacheMask, "cacheMask");
        int[] sl = t(slots, "slots").readInts();
        if (!(kc.rank() == 3 && vc.size() == kc.size())) throw bad("decodeAttention", "caches must be [B, S, kvHeads * D]: " + kc.describe() + ", " + vc.describe());
        int B = kc.dim(0), S = kc.dim(1);
        if (!(heads % kvHeads == 0 && kc.dim(2) % kvHeads == 0)) throw bad("decodeAttention", heads + " heads, " + kvHeads + " kv heads, cache " + kc.describe());
        int D = kc.dim(2) / kvHeads;
        if (qq.size() != B * heads * D) throw bad("decodeAttention", "q " + qq.describe() + " for " + B + " x " + heads + " heads of " + D);
        sameSize("decodeAttention out", o, qq);
        if (!(m.size() == B * S && sl.length == B)) throw bad("decodeAttention", "cacheMask " + m.describe() + " / slots for cache " + kc.describe());
        if (kernels == CpuKernels.FAST) {
            blasDecode.decode(o, qq, kc, vc, m.readInts(), sl, B, S, heads, kvHeads, D, slidingWindow);
        } else {
            Attention.decode(o.write(), qq.read(), kc.read(), vc.read(), m.readInts(), sl, B, S, heads, kvHeads, D, slidingWindow, par);
        }
        o.roundIfBf16();
    }

    @Override
    public void sample(Tensor tokens, Tensor logits, Tensor finished, Tensor seqIds, Tensor steps,
                       long seed, SamplingParams params, int[] eosIds, int padId) {
        CpuTensor z = t(logits, "logits");
        int V = z.dim(-1), B = z.rows();
        int[] tok = t(tokens, "tokens").writeInts(), fin = t(finished, "finished").writeInts();
        int[] ids = t(seqIds, "seqIds").readInts(), st = t(steps, "steps").readInts();
        if (!(tok.length == B && fin.length == B && ids.length == B && st.length == B)) throw bad("sample",
                "tokens, finished, seqIds and steps must have " + B + " elements");
        float[] za = z.read();
        par.range(B, V * 8L, (lo, hi) -> {
            for (int b = lo; b < hi; b++) {
                if (fin[b] != 0) {
                    tok[b] = padId;
                    continue;
                }
                int id = Sampler.pick(za, b * V, V, params, seed, ids[b], st[b]);
                tok[b] = id;
                for (int e : eosIds) if (id == e) fin[b] = 1;
            }
        });
    }

    @Override
    public void close() {
        matmul.close();
        if (blasAttention != null) blasAttention.close();
        if (blasDecode != null) blasDecode.close();
        if (ownsPool) pool.shutdown();
    }
}
