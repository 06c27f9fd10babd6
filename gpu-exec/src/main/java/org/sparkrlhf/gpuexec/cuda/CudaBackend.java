package org.sparkrlhf.gpuexec.cuda;

import static jcuda.driver.JCudaDriver.cuMemsetD8Async;

import java.util.List;
import java.util.function.Consumer;

import jcuda.driver.CUfunction;

import org.sparkrlhf.gpuexec.backend.AdamWStep;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.Tensor;

/**
 * The model engine's ops on one NVIDIA GPU: CUDA C kernels compiled at run time by NVRTC, GEMMs in
 * cuBLAS, everything queued in order on one stream. Float tensors may be F32 or BF16 in any mix;
 * the fast paths (tensor-core GEMMs and flash attention) take BF16 activations and weights with
 * fp32 accumulation. Memory is counted per backend instance (one model) and by kind, see
 * {@link #memoryReport()}.
 */
public final class CudaBackend implements Backend {
    private static final List<String> PLAIN = List.of();
    private static final int THREADS = 256;

    private final CudaContext context;
    private final CudaStream stream;
    private final CublasHandle cublas;
    private final KernelModules kernels;
    private final MemoryLedger ledger = new MemoryLedger();
    private final Precision precision;
    private MemoryKind allocationKind = MemoryKind.ACTIVATIONS;
    private boolean closed;
    /** While a step is being captured: the shadows it reads without refreshing them (see capturable). */
    private List<ShadowUse> captureShadowUses;
    private long captureNumber;
    private java.util.Set<CudaTensor> convertInGraph = java.util.Set.of();

    /** True when a CUDA driver and a device are there; see {@link #unavailableReason()}. */
    public static boolean isAvailable() {
        return CudaDriver.isAvailable();
    }

    /** One line saying why the CUDA backend cannot run here ("no CUDA driver: ..."), or null. */
    public static String unavailableReason() {
        return CudaDriver.unavailableReason();
    }

    /** A backend on the GPU a Spark task was given ("0", "1", ...: the CUDA device ordinal). */
    public static CudaBackend forGpuAddress(String address, Precision precision) {
        return new CudaBackend(CudaContext.ordinalOfGpuAddress(address), precision);
    }

    public CudaBackend(int deviceOrdinal, Precision precision) {
        this.precision = precision;
        this.context = CudaContext.forDevice(deviceOrdinal);
        this.stream = new CudaStream(context);
        this.cublas = new CublasHandle(stream, ledger);
        this.kernels = context.kernels();
    }

    @Override
    public String name() {
        return "cuda(" + context.ordinal + ": " + context.deviceName + ", " + context.architecture() + ", "
                + precision.name().toLowerCase(java.util.Locale.ROOT) + ")";
    }

    public Precision precision() {
        return precision;
    }

    /** BF16 in the bf16 mode: the tensor cores read bf16 operands, so bf16 activations need no shadow copies. */
    @Override
    public DType activationType() {
        return precision == Precision.BF16 ? DType.BF16 : DType.F32;
    }

    public CudaContext context() {
        return context;
    }

    public CudaStream stream() {
        return stream;
    }

    // ---------------------------------------------------------------- memory and its accounting

    /** GPU memory this backend (one model) holds, by kind. */
    public GpuMemoryReport memoryReport() {
        return ledger.report();
    }

    public MemoryLedger ledger() {
        return ledger;
    }

    /** The kind that {@link #allocate(DType, int...)} counts new tensors as; returns the previous one. */
    public MemoryKind allocationKind(MemoryKind kind) {
        MemoryKind previous = allocationKind;
        allocationKind = kind;
        return previous;
    }

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        return allocate(allocationKind, dtype, shape);
    }

    /** A new zero tensor counted as {@code kind}. */
    public CudaTensor allocate(MemoryKind kind, DType dtype, int... shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + java.util.Arrays.toString(shape));
            n *= d;
        }
        CudaBuffer buf = buffer(stream, n * dtype.bytes(), kind);
        buf.zero();
        return new CudaTensor(this, dtype, shape, buf);
    }

    /**
     * Device memory from the pool, counted in this backend's ledger. When the pool cannot grow, the
     * device's pool is trimmed (which waits for every queued free, on every stream and backend of the
     * device, and gives back what fragments hold) and the allocation tried once more; not while a
     * step is being recorded, since trimming waits for the device, which a capture forbids.
     */
    private CudaBuffer buffer(CudaStream on, long bytes, MemoryKind kind) {
        try {
            return CudaBuffer.allocate(on, bytes, kind, ledger);
        } catch (IllegalStateException first) {
            if (captureShadowUses != null) throw first;
            context.trim();
            try {
                return CudaBuffer.allocate(on, bytes, kind, ledger);
            } catch (IllegalStateException second) {
                second.addSuppressed(first);
                throw new IllegalStateException(second.getMessage() + " (after trimming the device's memory pool)", second);
            }
        }
    }

    /** Scratch memory for one op, returned to the pool right after (ordered on the stream). */
    private CudaTensor scratch(DType dtype, int... shape) {
        return allocate(MemoryKind.WORKSPACE, dtype, shape);
    }

    @Override
    public void free(Tensor t) {
        if (t == null) return;
        CudaTensor x = c(t, "tensor");
        if (x.shadow != null) {
            if (x.shadow.buffer.stream != stream) stream.synchronize(); // made on the side stream: free it after use
            x.shadow.buffer.close();
        }
        x.shadow = null;
        x.buffer.close();
    }

    @Override
    public void uploadRange(Tensor dst, long at, float[] src, int from, int n) {
        CudaTensor d = c(dst, "dst");
        if (!d.dtype().isFloat()) throw bad("upload", "float values into " + d.describe());
        checkRange("upload", d, at, n);
        if (!(from >= 0 && n >= 0 && from + n <= src.length)) throw bad("upload", "values " + from + " .. " + (from + n) + " of " + src.length);
        d.version++;
        d.buffer.writeAs(elementType(d), at, src, from, n);
    }

    private static ElementType elementType(CudaTensor t) {
        return t.dtype() == DType.BF16 ? ElementType.BF16 : ElementType.F32;
    }

    /** Elements [at, at + n) lie in the tensor. */
    private static void checkRange(String op, CudaTensor t, long at, long n) {
        if (!(at >= 0 && n >= 0 && at + n <= t.numel())) throw bad(op, "elements " + at + " .. " + (at + n) + " of " + t.describe());
    }

    @Override
    public void upload(Tensor dst, int[] src) {
        CudaTensor d = c(dst, "dst");
        if (d.dtype() != DType.I32) throw bad("upload", "int values into " + d.describe());
        if (src.length != d.numel()) throw bad("upload", src.length + " values for " + d.describe());
        d.version++;
        d.buffer.writeInts(src);
    }

    @Override
    public void downloadRange(Tensor src, long at, float[] into, int to, int n) {
        CudaTensor s = c(src, "src");
        if (!s.dtype().isFloat()) throw bad("download", "float values from " + s.describe());
        checkRange("download", s, at, n);
        s.buffer.readAs(elementType(s), at, into, to, n);
    }

    @Override
    public int[] downloadInts(Tensor src) {
        CudaTensor s = c(src, "src");
        if (s.dtype() != DType.I32) throw bad("downloadInts", "int values from " + s.describe());
        return s.buffer.readInts(Math.toIntExact(s.numel()));
    }

    @Override
    public void synchronize() {
        stream.synchronize();
    }

    // ---------------------------------------------------------------- checks and launches

    private CudaTensor c(Tensor x, String what) {
        if (x == null) throw new IllegalArgumentException(what + " is null");
        if (!(x instanceof CudaTensor t)) throw new IllegalArgumentException(what + " is not a CUDA tensor: " + x);
        if (t.owner != this) throw new IllegalArgumentException(what + " belongs to another CUDA backend");
        if (t.buffer.isFreed()) throw new IllegalArgumentException(what + " " + t.describe() + " was freed");
        return t;
    }

    private CudaTensor opt(Tensor x, String what) {
        return x == null ? null : c(x, what);
    }

    /**
     * A broken precondition of {@code op}. Checks read {@code if (!ok) throw bad(op, message)}, not a
     * require(ok, op, message) method: its message would be built on every call, in the hot loops too.
     */
    private static IllegalArgumentException bad(String op, String message) {
        return new IllegalArgumentException(op + ": " + message);
    }

    private static void isFloat(String op, CudaTensor... ts) {
        for (CudaTensor t : ts) if (t != null && !t.dtype().isFloat()) throw bad(op, "expected a float tensor, got " + t.describe());
    }

    private static void isInt(String op, CudaTensor t) {
        if (t.dtype() != DType.I32) throw bad(op, "expected an I32 tensor, got " + t.describe());
    }

    private static void isF32(String op, CudaTensor t) {
        if (t.dtype() != DType.F32) throw bad(op, "expected an F32 tensor, got " + t.describe());
    }

    private static void sameSize(String op, CudaTensor a, CudaTensor b) {
        if (a.numel() != b.numel()) throw bad(op, "sizes differ: " + a.describe() + " vs " + b.describe());
    }

    /** Marks tensors as written by the op about to be queued (their bf16 shadows become stale). */
    private void written(CudaTensor... ts) {
        for (CudaTensor t : ts) {
            if (t == null) continue;
            t.version++;
            if (captureShadowUses != null) t.captureWritten = captureNumber;
        }
    }

    /** A shadow the captured step read as it was at capture; refreshed before each replay if stale. */
    private record ShadowUse(CudaTensor tensor, long version) {}

    /**
     * t rounded to bf16 for the tensor cores: t itself when BF16, else its shadow, converted again
     * when t changed since. Shadows are counted as the kind of memory their tensor is.
     */
    private CudaTensor bf16(CudaTensor t) {
        if (t.dtype() == DType.BF16) return t;
        if (captureShadowUses != null) return bf16WhileRecording(t);
        if (t.shadow != null && t.shadowVersion == t.version) return t.shadow;
        if (t.shadow == null) {
            t.shadow = new CudaTensor(this, DType.BF16, t.shape(), buffer(stream, t.numel() * 2, t.buffer.kind()));
        }
        convert(stream, t);
        return t.shadow;
    }

    /**
     * While a step is recorded: a tensor the step has not written holds its final value now, so its
     * shadow is made current outside the graph (on the side stream) and the graph only reads it; a
     * tensor the step writes is converted inside the graph, once after each write.
     */
    private CudaTensor bf16WhileRecording(CudaTensor t) {
        if (t.shadow == null) {
            // never inside the graph: a buffer the graph allocated would have to be freed by it
            t.shadow = new CudaTensor(this, DType.BF16, t.shape(),
                    buffer(sideStream(), t.numel() * 2, t.buffer.kind()));
            sideStream().synchronize();
        }
        boolean inGraph = t.captureWritten == captureNumber || convertInGraph.contains(t);
        if (!inGraph) {
            if (t.shadowVersion != t.version) {
                convert(sideStream(), t);
                sideStream().synchronize();
            }
            captureShadowUses.add(new ShadowUse(t, t.version));
            return t.shadow;
        }
        if (t.shadowVersion == t.version && t.shadowCapture == captureNumber) return t.shadow;
        convert(stream, t);
        t.shadowCapture = captureNumber;
        return t.shadow;
    }

    private void convert(CudaStream on, CudaTensor t) {
        long n = t.numel();
        if (n > 0) kernels.launch(on, fn("elementwise.cu", "copy_float"), (int) ((n + THREADS - 1) / THREADS), 1, 1, THREADS, 0,
                t.shadow.buffer, 1, t.buffer, t.bf(), n);
        t.shadowVersion = t.version;
    }

    private CudaStream side;

    /** A second stream for work that must stay out of a graph being recorded on the main one. */
    private CudaStream sideStream() {
        if (side == null) side = new CudaStream(context);
        return side;
    }

    private static Object ptr(CudaTensor t) {
        return t == null ? KernelModules.NULL : t.buffer;
    }

    private CUfunction fn(String source, String name) {
        return kernels.function(source, PLAIN, name);
    }

    private CUfunction fn(String source, List<String> defines, String name) {
        return kernels.function(source, defines, name);
    }

    /** One thread per element for n elements. */
    private void launch1d(CUfunction f, long n, Object... args) {
        if (n <= 0) return;
        long blocks = (n + THREADS - 1) / THREADS;
        if (blocks > Integer.MAX_VALUE) throw bad("launch", n + " elements");
        kernels.launch(stream, f, (int) blocks, 1, 1, THREADS, 0, args);
    }

    private void launch(CUfunction f, int gx, int gy, int gz, int threads, int shared, Object... args) {
        kernels.launch(stream, f, gx, gy, gz, threads, shared, args);
    }

    /**
     * Runs {@code body} on an F32 gradient: {@code grad} itself when it is F32, else a zeroed F32
     * scratch that is then added into {@code grad} (kernels that add with atomics need F32).
     */
    private void intoF32(CudaTensor grad, Consumer<CudaTensor> body) {
        if (grad.dtype() == DType.F32) {
            body.accept(grad);
            return;
        }
        CudaTensor tmp = scratch(DType.F32, grad.shape());
        body.accept(tmp);
        addInto(grad, tmp);
        free(tmp);
    }

    /** dst += src (float tensors of the same size). */
    private void addInto(CudaTensor dst, CudaTensor src) {
        launch1d(fn("elementwise.cu", "add_float"), dst.numel(), dst.buffer, dst.bf(), dst.buffer, dst.bf(),
                src.buffer, src.bf(), dst.numel());
    }

    /** t as F32: t itself, or a converted scratch copy (to be freed by the caller when != t). */
    private CudaTensor asF32(CudaTensor t) {
        if (t.dtype() == DType.F32) return t;
        CudaTensor f = scratch(DType.F32, t.shape());
        copy(f, t);
        return f;
    }

    private void freeIfScratch(CudaTensor t, CudaTensor original) {
        if (t != original) free(t);
    }

    // ---------------------------------------------------------------- elementwise and reductions

    @Override
    public void zero(Tensor t) {
        CudaTensor x = c(t, "t");
        written(x);
        context.makeCurrent();
        cuMemsetD8Async(x.buffer.ptr, (byte) 0, x.bytes(), stream.stream);
    }

    @Override
    public void copyRange(Tensor dst, long dstAt, Tensor src, long srcAt, long n) {
        CudaTensor d = c(dst, "dst"), s = c(src, "src");
        checkRange("copy", d, dstAt, n);
        checkRange("copy", s, srcAt, n);
        written(d);
        if (d.dtype() == DType.I32 || s.dtype() == DType.I32) {
            if (d.dtype() != s.dtype()) throw bad("copy", "I32 copies only to I32: " + s.describe() + " -> " + d.describe());
        }
        if (d.dtype() == s.dtype()) {
            long bytes = d.dtype().bytes();
            d.buffer.copyFrom(dstAt * bytes, s.buffer, srcAt * bytes, n * bytes);
            return;
        }
        launch1d(fn("elementwise.cu", "copy_float"), n, d.buffer.at(dstAt * d.dtype().bytes()), d.bf(),
                s.buffer.at(srcAt * s.dtype().bytes()), s.bf(), n);
    }


    @Override
    public void scale(Tensor t, float s) {
        CudaTensor x = c(t, "t");
        isFloat("scale", x);
        written(x);
        launch1d(fn("elementwise.cu", "scale_float"), x.numel(), x.buffer, x.bf(), s, x.numel());
    }

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        CudaTensor o = c(out, "out"), x = c(a, "a"), y = c(b, "b");
        isFloat("add", o, x, y);
        sameSize("add", o, x);
        sameSize("add", o, y);
        written(o);
        launch1d(fn("elementwise.cu", "add_float"), o.numel(), o.buffer, o.bf(), x.buffer, x.bf(), y.buffer, y.bf(), o.numel());
    }

    @Override
    public void addInt(Tensor t, int delta) {
        CudaTensor x = c(t, "t");
        isInt("addInt", x);
        written(x);
        launch1d(fn("elementwise.cu", "add_int"), x.numel(), x.buffer, delta, x.numel());
    }

    @Override
    public void sumSquares(Tensor out, Tensor x) {
        CudaTensor o = c(out, "out"), v = c(x, "x");
        isF32("sumSquares", o);
        if (o.numel() != 1) throw bad("sumSquares", "out must have one element, got " + o.describe());
        isFloat("sumSquares", v);
        written(o);
        long n = v.numel();
        int blocks = (int) Math.max(1, Math.min(context.multiprocessors * 4L, (n + THREADS - 1) / THREADS));
        launch(fn("elementwise.cu", "sum_squares"), blocks, 1, 1, THREADS, 0, o.buffer, v.buffer, v.bf(), n);
    }

    // ---------------------------------------------------------------- transformer layers

    @Override
    public void embedding(Tensor out, Tensor ids, Tensor table) {
        CudaTensor o = c(out, "out"), id = c(ids, "ids"), w = c(table, "table");
        isInt("embedding", id);
        isFloat("embedding", o, w);
        int V = w.dim(0), C = w.dim(-1), N = (int) id.numel();
        if (o.numel() != (long) N * C) throw bad("embedding", "out " + o.describe() + " for " + N + " ids of width " + C);
        written(o);
        launch1d(fn("elementwise.cu", "embedding_forward"), (long) N * C, o.buffer, o.bf(), id.buffer, w.buffer, w.bf(), N, C, V);
    }

    @Override
    public void embeddingBackward(Tensor dTable, Tensor ids, Tensor dOut) {
        CudaTensor dw = c(dTable, "dTable"), id = c(ids, "ids"), g = c(dOut, "dOut");
        isInt("embeddingBackward", id);
        int V = dw.dim(0), C = dw.dim(-1), N = (int) id.numel();
        if (g.numel() != (long) N * C) throw bad("embeddingBackward", "dOut " + g.describe() + " for " + N + " ids");
        written(dw);
        intoF32(dw, f -> launch1d(fn("elementwise.cu", "embedding_backward"), (long) N * C, f.buffer, id.buffer,
                g.buffer, g.bf(), N, C, V));
    }

    private static ElementType et(DType d) {
        return d == DType.BF16 ? ElementType.BF16 : ElementType.F32;
    }

    @Override
    public void matmul(Tensor out, Tensor in, Tensor weight, Tensor bias) {
        CudaTensor o = c(out, "out"), x = c(in, "in"), w = c(weight, "weight"), b = opt(bias, "bias");
        isFloat("matmul", o, x, w, b);
        if (w.rank() != 2) throw bad("matmul", "weight must be [OUT, IN], got " + w.describe());
        int OC = w.dim(0), IC = w.dim(1);
        if (x.dim(-1) != IC) throw bad("matmul", "in " + x.describe() + " does not match weight " + w.describe());
        int N = x.rows();
        if (!(o.numel() == (long) N * OC && o.dim(-1) == OC)) throw bad("matmul", "out " + o.describe() + " for " + N + " rows of " + OC);
        if (!(b == null || b.numel() == OC)) throw bad("matmul", "bias " + (b == null ? "" : b.describe()) + " for " + OC + " outputs");
        if (N == 0) return;
        if (tensorCores(x, w)) {
            CudaTensor xb = bf16(x), wb = bf16(w);
            written(o);
            cublas.linearForward(o.address(), et(o.dtype()), OC, xb.address(), ElementType.BF16, IC, wb.address(),
                    ElementType.BF16, N, IC, OC, 1f, 0f);
        } else {
            written(o);
            // fp32 inputs, or a mix: fp32 products on fp32 copies (exact for bf16-valued inputs).
            CudaTensor xf = asF32(x), wf = asF32(w);
            CudaTensor of = o.dtype() == DType.F32 ? o : scratch(DType.F32, o.shape());
            cublas.linearForward(of.address(), ElementType.F32, OC, xf.address(), ElementType.F32, IC, wf.address(),
                    ElementType.F32, N, IC, OC, 1f, 0f);
            if (of != o) {
                launch1d(fn("elementwise.cu", "copy_float"), o.numel(), o.buffer, o.bf(), of.buffer, 0, o.numel());
                free(of);
            }
            freeIfScratch(xf, x);
            freeIfScratch(wf, w);
        }
        if (b != null) {
            launch1d(fn("elementwise.cu", "bias_add"), (long) N * OC, o.buffer, o.bf(), b.buffer, b.bf(), N, OC);
        }
    }

    /** Whether a product of these operands runs on the tensor cores (bf16 in, fp32 accumulation). */
    private boolean tensorCores(CudaTensor... operands) {
        if (precision == Precision.BF16) return true;
        for (CudaTensor t : operands) if (t.dtype() != DType.BF16) return false;
        return true;
    }

    @Override
    public void matmulBackward(Tensor dIn, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor in, Tensor weight) {
        CudaTensor g = c(dOut, "dOut"), x = c(in, "in"), w = c(weight, "weight");
        CudaTensor dx = opt(dIn, "dIn"), dw = opt(dWeight, "dWeight"), db = opt(dBias, "dBias");
        isFloat("matmulBackward", g, x, w, dx, dw, db);
        if (w.rank() != 2) throw bad("matmulBackward", "weight must be [OUT, IN], got " + w.describe());
        int OC = w.dim(0), IC = w.dim(1), N = x.rows();
        if (!(x.dim(-1) == IC && g.numel() == (long) N * OC)) throw bad("matmulBackward",
                "dOut " + g.describe() + ", in " + x.describe() + ", weight " + w.describe() + " disagree");
        if (dx != null) sameSize("matmulBackward dIn", dx, x);
        if (dw != null) sameSize("matmulBackward dWeight", dw, w);
        if (db != null && db.numel() != OC) throw bad("matmulBackward", "dBias " + db.describe() + " for " + OC + " outputs");
        if (N == 0) return;
        written(dx, dw, db);
        if (tensorCores(g, x, w)) {
            CudaTensor gb = bf16(g);
            if (dx != null) {
                cublas.linearBackwardInput(dx.address(), et(dx.dtype()), IC, gb.address(), ElementType.BF16, OC,
                        bf16(w).address(), ElementType.BF16, N, IC, OC, 1f);
            }
            if (dw != null) {
                cublas.linearBackwardWeight(dw.address(), et(dw.dtype()), gb.address(), ElementType.BF16, OC,
                        bf16(x).address(), ElementType.BF16, IC, N, IC, OC, 1f);
            }
        } else {
            CudaTensor gf = asF32(g);
            if (dx != null) {
                CudaTensor wf = asF32(w);
                intoF32Gemm(dx, f -> cublas.linearBackwardInput(f.address(), ElementType.F32, IC, gf.address(),
                        ElementType.F32, OC, wf.address(), ElementType.F32, N, IC, OC, 1f));
                freeIfScratch(wf, w);
            }
            if (dw != null) {
                CudaTensor xf = asF32(x);
                intoF32Gemm(dw, f -> cublas.linearBackwardWeight(f.address(), ElementType.F32, gf.address(),
                        ElementType.F32, OC, xf.address(), ElementType.F32, IC, N, IC, OC, 1f));
                freeIfScratch(xf, x);
            }
            freeIfScratch(gf, g);
        }
        if (db != null) {
            int rowBlocks = Math.min(65535, (N + 255) / 256);
            intoF32(db, f -> launch(fn("elementwise.cu", "bias_backward"), (OC + THREADS - 1) / THREADS, rowBlocks, 1,
                    THREADS, 0, f.buffer, g.buffer, g.bf(), N, OC));
        }
    }

    /** A GEMM that adds (beta 1) into grad through F32: grad itself, or an F32 copy added back. */
    private void intoF32Gemm(CudaTensor grad, Consumer<CudaTensor> gemm) {
        if (grad.dtype() == DType.F32) {
            gemm.accept(grad);
            return;
        }
        CudaTensor tmp = scratch(DType.F32, grad.shape());
        gemm.accept(tmp);
        addInto(grad, tmp);
        free(tmp);
    }

    @Override
    public void rmsnorm(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps) {
        CudaTensor o = c(out, "out"), r = opt(rstd, "rstd"), x = c(in, "in"), w = c(weight, "weight");
        isFloat("rmsnorm", o, x, w);
        int C = (int) w.numel(), N = x.rows();
        if (x.dim(-1) != C) throw bad("rmsnorm", "in " + x.describe() + " vs weight " + w.describe());
        sameSize("rmsnorm", o, x);
        if (r != null) {
            isF32("rmsnorm rstd", r);
            if (r.numel() != N) throw bad("rmsnorm", "rstd " + r.describe() + " for " + N + " rows");
        }
        written(o, r);
        launch(fn("rmsnorm.cu", "rmsnorm_forward"), (N + 3) / 4, 1, 1, 128, 0, o.buffer, o.bf(), ptr(r), x.buffer, x.bf(),
                w.buffer, w.bf(), N, C, eps);
    }

    @Override
    public void rmsnormBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight, Tensor rstd) {
        CudaTensor g = c(dOut, "dOut"), x = c(in, "in"), w = c(weight, "weight"), r = c(rstd, "rstd");
        CudaTensor dx = opt(dIn, "dIn"), dw = opt(dWeight, "dWeight");
        isFloat("rmsnormBackward", g, x, w, dx, dw);
        isF32("rmsnormBackward rstd", r);
        int C = (int) w.numel(), N = x.rows();
        sameSize("rmsnormBackward", g, x);
        if (dx != null) sameSize("rmsnormBackward dIn", dx, x);
        if (dw != null && dw.numel() != C) throw bad("rmsnormBackward", "dWeight " + dw.describe() + " for width " + C);
        if (N == 0 || (dx == null && dw == null)) return;
        written(dx, dw);
        int rowsPerBlock = Math.max(4, (N + 2 * context.multiprocessors - 1) / (2 * context.multiprocessors));
        int blocks = (N + rowsPerBlock - 1) / rowsPerBlock;
        int shared = dw == null ? 0 : C * 4;
        CUfunction f = fn("rmsnorm.cu", "rmsnorm_backward");
        if (dw == null) {
            launch(f, blocks, 1, 1, 128, shared, dx.buffer, dx.bf(), KernelModules.NULL, g.buffer, g.bf(), x.buffer, x.bf(),
                    w.buffer, w.bf(), r.buffer, N, C, rowsPerBlock);
        } else {
            intoF32(dw, dwf -> launch(f, blocks, 1, 1, 128, shared, ptr(dx), dx == null ? 0 : dx.bf(), dwf.buffer,
                    g.buffer, g.bf(), x.buffer, x.bf(), w.buffer, w.bf(), r.buffer, N, C, rowsPerBlock));
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

    private void rope(String op, Tensor xt, Tensor positions, Tensor invFreq, int heads, float sign) {
        CudaTensor x = c(xt, "x"), p = c(positions, "positions"), f = c(invFreq, "invFreq");
        isFloat(op, x);
        isInt(op, p);
        isF32(op + " invFreq", f);
        int half = (int) f.numel(), D = 2 * half, N = (int) p.numel();
        if (x.numel() != (long) N * heads * D) throw bad(op, x.describe() + " is not " + N + " rows of " + heads + " heads of " + D);
        written(x);
        launch1d(fn("rotary.cu", "rotary"), (long) N * heads * half, x.buffer, x.bf(), p.buffer, f.buffer, N, heads, D, sign);
    }

    /** B, T, D of an attention call, with its checks. */
    private int[] attentionDims(String op, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor mask, int heads, int kvHeads) {
        isInt(op + " mask", mask);
        if (mask.rank() != 2) throw bad(op, "mask must be [B, T], got " + mask.describe());
        if (!(heads > 0 && kvHeads > 0 && heads % kvHeads == 0)) throw bad(op, heads + " heads are not a multiple of " + kvHeads + " kv heads");
        int B = mask.dim(0), T = mask.dim(1);
        long width = q.numel() / Math.max(1, (long) B * T);
        if (!(q.numel() == (long) B * T * width && width % heads == 0)) throw bad(op, "q " + q.describe() + " for mask " + mask.describe() + " and " + heads + " heads");
        int D = (int) (width / heads);
        if (!(k.numel() == (long) B * T * kvHeads * D && v.numel() == k.numel())) throw bad(op,
                "k " + k.describe() + " / v " + v.describe() + " for " + kvHeads + " kv heads of " + D);
        if (D > 256) throw bad(op, "head size " + D + " is above 256, which the CUDA kernels do not take");
        return new int[] {B, T, D};
    }

    /** Head sizes the tensor-core kernels take: multiples of 16 up to 128. */
    private static boolean flashHeadSize(int D) {
        return D % 16 == 0 && D <= 128;
    }

    private static int flashForwardShared(int D) {
        return 3 * 64 * (D + 8) * 2 + 64 * 4;
    }

    private static int flashBackwardShared(int D) {
        return 4 * 64 * (D + 8) * 2 + 64 * 72 * 2 + 3 * 64 * 4;
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor mask, int heads, int kvHeads, int slidingWindow) {
        CudaTensor o = c(out, "out"), l = opt(lse, "lse"), qq = c(q, "q"), kk = c(k, "k"), vv = c(v, "v"), m = c(mask, "mask");
        isFloat("attention", o, qq, kk, vv);
        int[] d = attentionDims("attention", qq, kk, vv, m, heads, kvHeads);
        int B = d[0], T = d[1], D = d[2];
        sameSize("attention out", o, qq);
        if (l != null) {
            isF32("attention lse", l);
            if (l.numel() != (long) B * heads * T) throw bad("attention", "lse " + l.describe() + " must be [B, heads, T]");
        }
        float scale = (float) (1.0 / Math.sqrt(D));
        if (tensorCores(qq, kk, vv) && flashHeadSize(D)) {
            CudaTensor qb = bf16(qq), kb = bf16(kk), vb = bf16(vv);
            written(o, l);
            launch(fn("flash.cu", List.of("HD=" + D), "flash_forward"), (T + 63) / 64, heads, B, 128, flashForwardShared(D),
                    o.buffer, o.bf(), ptr(l), qb.buffer, kb.buffer, vb.buffer, m.buffer, T, heads, kvHeads, slidingWindow, scale);
        } else {
            written(o, l);
            int bf = qq.bf() | kk.bf() << 1 | vv.bf() << 2 | o.bf() << 3;
            launch(fn("attention.cu", "attention_forward_simple"), (T + 63) / 64, heads, B, 64, 0, o.buffer, ptr(l),
                    qq.buffer, kk.buffer, vv.buffer, m.buffer, bf, B, T, heads, kvHeads, D, slidingWindow, scale);
        }
    }

    @Override
    public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor out, Tensor lse,
                                  Tensor q, Tensor k, Tensor v, Tensor mask, int heads, int kvHeads, int slidingWindow) {
        CudaTensor qq = c(q, "q"), kk = c(k, "k"), vv = c(v, "v"), m = c(mask, "mask");
        CudaTensor dqq = opt(dq, "dq"), dkk = opt(dk, "dk"), dvv = opt(dv, "dv"), g = c(dOut, "dOut"), o = c(out, "out"), l = c(lse, "lse");
        isFloat("attentionBackward", qq, kk, vv, dqq, dkk, dvv, g, o);
        isF32("attentionBackward lse", l);
        int[] d = attentionDims("attentionBackward", qq, kk, vv, m, heads, kvHeads);
        int B = d[0], T = d[1], D = d[2];
        if (dqq != null) sameSize("attentionBackward dq", dqq, qq);
        if (dkk != null) sameSize("attentionBackward dk", dkk, kk);
        if (dvv != null) sameSize("attentionBackward dv", dvv, vv);
        sameSize("attentionBackward dOut", g, qq);
        sameSize("attentionBackward out", o, qq);
        if (l.numel() != (long) B * heads * T) throw bad("attentionBackward", "lse " + l.describe() + " must be [B, heads, T]");
        float scale = (float) (1.0 / Math.sqrt(D));
        if (tensorCores(qq, kk, vv, g) && flashHeadSize(D)) {
            CudaTensor qb = bf16(qq), kb = bf16(kk), vb = bf16(vv), gb = bf16(g);
            written(dqq, dkk, dvv);
            CudaTensor delta = scratch(DType.F32, B, heads, T);
            int rows = B * T * heads;
            launch(fn("flash.cu", List.of("HD=" + D), "attention_delta"), (rows + 3) / 4, 1, 1, 128, 0, delta.buffer,
                    g.buffer, o.buffer, g.bf() | o.bf() << 1, B, T, heads, D);
            CudaTensor dqAcc = scratch(DType.F32, B, T, heads * D);
            int bf = (dkk == null ? 0 : dkk.bf()) | (dvv == null ? 0 : dvv.bf()) << 1;
            launch(fn("flash.cu", List.of("HD=" + D), "flash_backward"), (T + 63) / 64, kvHeads, B, 128, flashBackwardShared(D),
                    ptr(dkk), ptr(dvv), bf, dqAcc.buffer, gb.buffer, qb.buffer, kb.buffer, vb.buffer, l.buffer, delta.buffer,
                    m.buffer, T, heads, kvHeads, slidingWindow, scale);
            if (dqq != null) {
                launch1d(fn("flash.cu", List.of("HD=" + D), "attention_dq_finish"), dqq.numel(), dqq.buffer, dqq.bf(),
                        dqAcc.buffer, scale, dqq.numel());
            }
            free(dqAcc);
            free(delta);
        } else {
            written(dqq, dkk, dvv);
            int bf = qq.bf() | kk.bf() << 1 | vv.bf() << 2 | o.bf() << 3 | g.bf() << 4
                    | (dqq == null ? 0 : dqq.bf()) << 5 | (dkk == null ? 0 : dkk.bf()) << 6 | (dvv == null ? 0 : dvv.bf()) << 7;
            if (dqq != null) {
                launch(fn("attention.cu", "attention_backward_dq_simple"), (T + 63) / 64, heads, B, 64, 0, dqq.buffer,
                        g.buffer, o.buffer, qq.buffer, kk.buffer, vv.buffer, l.buffer, m.buffer, bf, B, T, heads, kvHeads, D,
                        slidingWindow, scale);
            }
            if (dkk != null || dvv != null) {
                launch(fn("attention.cu", "attention_backward_dkv_simple"), (T + 63) / 64, kvHeads, B, 64, 0, ptr(dkk),
                        ptr(dvv), g.buffer, o.buffer, qq.buffer, kk.buffer, vv.buffer, l.buffer, m.buffer, bf, B, T, heads,
                        kvHeads, D, slidingWindow, scale);
            }
        }
    }

    @Override
    public void swiglu(Tensor out, Tensor gate, Tensor up) {
        CudaTensor o = c(out, "out"), g = c(gate, "gate"), u = c(up, "up");
        isFloat("swiglu", o, g, u);
        sameSize("swiglu", o, g);
        sameSize("swiglu", o, u);
        written(o);
        launch1d(fn("elementwise.cu", "swiglu_forward"), o.numel(), o.buffer, o.bf(), g.buffer, g.bf(), u.buffer, u.bf(), o.numel());
    }

    @Override
    public void swigluBackward(Tensor dGate, Tensor dUp, Tensor dOut, Tensor gate, Tensor up) {
        CudaTensor dg = opt(dGate, "dGate"), du = opt(dUp, "dUp"), g = c(dOut, "dOut"), ga = c(gate, "gate"), ua = c(up, "up");
        isFloat("swigluBackward", dg, du, g, ga, ua);
        sameSize("swigluBackward", g, ga);
        sameSize("swigluBackward", g, ua);
        if (dg != null) sameSize("swigluBackward dGate", dg, ga);
        if (du != null) sameSize("swigluBackward dUp", du, ua);
        written(dg, du);
        launch1d(fn("elementwise.cu", "swiglu_backward"), g.numel(), ptr(dg), dg == null ? 0 : dg.bf(), ptr(du),
                du == null ? 0 : du.bf(), g.buffer, g.bf(), ga.buffer, ga.bf(), ua.buffer, ua.bf(), g.numel());
    }

    // ---------------------------------------------------------------- heads and losses

    @Override
    public void logSoftmax(Tensor out, Tensor logits) {
        CudaTensor o = c(out, "out"), z = c(logits, "logits");
        isFloat("logSoftmax", o, z);
        sameSize("logSoftmax", o, z);
        written(o);
        int V = z.dim(-1), N = z.rows();
        launch(fn("logprob.cu", "log_softmax"), N, 1, 1, 256, 0, o.buffer, o.bf(), z.buffer, z.bf(), N, V);
    }

    @Override
    public void tokenLogprobs(Tensor logprobs, Tensor entropy, Tensor lse, Tensor logits, Tensor targets) {
        CudaTensor z = c(logits, "logits"), lp = c(logprobs, "logprobs"), l = c(lse, "lse"), e = opt(entropy, "entropy"),
                tg = c(targets, "targets");
        isFloat("tokenLogprobs", z);
        isF32("tokenLogprobs logprobs", lp);
        isF32("tokenLogprobs lse", l);
        if (e != null) isF32("tokenLogprobs entropy", e);
        isInt("tokenLogprobs targets", tg);
        int V = z.dim(-1), N = z.rows();
        if (!(tg.numel() == N && lp.numel() == N && l.numel() == N && (e == null || e.numel() == N))) throw bad("tokenLogprobs",
                "logits " + z.describe() + " need targets, logprobs, lse and entropy of " + N);
        written(lp, l, e);
        launch(fn("logprob.cu", "token_logprobs"), N, 1, 1, 256, 0, lp.buffer, ptr(e), l.buffer, z.buffer, z.bf(), tg.buffer, N, V);
    }

    @Override
    public void tokenLogprobsBackward(Tensor dLogits, Tensor dLogprobs, Tensor dEntropy, Tensor logits, Tensor lse,
                                      Tensor entropy, Tensor targets) {
        CudaTensor dz = c(dLogits, "dLogits"), z = c(logits, "logits"), l = c(lse, "lse"), tg = c(targets, "targets");
        CudaTensor dlp = opt(dLogprobs, "dLogprobs"), de = opt(dEntropy, "dEntropy"), e = opt(entropy, "entropy");
        if (!(de == null || e != null)) throw bad("tokenLogprobsBackward", "dEntropy needs the saved entropy");
        isFloat("tokenLogprobsBackward", dz, z);
        for (CudaTensor t : new CudaTensor[] {dlp, de, e, l}) if (t != null) isF32("tokenLogprobsBackward", t);
        isInt("tokenLogprobsBackward targets", tg);
        sameSize("tokenLogprobsBackward", dz, z);
        written(dz);
        int V = z.dim(-1), N = z.rows();
        launch(fn("logprob.cu", "token_logprobs_backward"), N, 1, 1, 256, 0, dz.buffer, dz.bf(), ptr(dlp), ptr(de),
                z.buffer, z.bf(), l.buffer, ptr(e), tg.buffer, N, V);
    }

    @Override
    public void gatherRows(Tensor out, Tensor in, Tensor rows) {
        CudaTensor o = c(out, "out"), x = c(in, "in"), r = c(rows, "rows");
        isFloat("gatherRows", o, x);
        isInt("gatherRows rows", r);
        int C = x.dim(-1), M = (int) r.numel();
        if (o.numel() != (long) M * C) throw bad("gatherRows", "out " + o.describe() + " for " + M + " rows of " + C);
        written(o);
        launch1d(fn("elementwise.cu", "gather_rows"), (long) M * C, o.buffer, o.bf(), x.buffer, x.bf(), r.buffer, M, C);
    }

    @Override
    public void gatherRowsBackward(Tensor dIn, Tensor dOut, Tensor rows) {
        CudaTensor dx = c(dIn, "dIn"), g = c(dOut, "dOut"), r = c(rows, "rows");
        isFloat("gatherRowsBackward", dx, g);
        isInt("gatherRowsBackward rows", r);
        int C = dx.dim(-1), M = (int) r.numel();
        if (g.numel() != (long) M * C) throw bad("gatherRowsBackward", "dOut " + g.describe() + " for " + M + " rows of " + C);
        written(dx);
        intoF32(dx, f -> launch1d(fn("elementwise.cu", "gather_rows_backward"), (long) M * C, f.buffer, g.buffer, g.bf(),
                r.buffer, M, C));
    }

    // ---------------------------------------------------------------- optimizer

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep s) {
        adamw(param, grad, m, v, s, null);
    }

    /**
     * {@link #adamw(Tensor, Tensor, Tensor, Tensor, AdamWStep)} with the gradient scale multiplied by
     * {@code gradScale[0]} read on the device (global-norm clipping with no round trip to the host).
     */
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep s, Tensor gradScale) {
        CudaTensor p = c(param, "param"), g = c(grad, "grad"), mm = c(m, "m"), vv = c(v, "v"), gs = opt(gradScale, "gradScale");
        isFloat("adamw", p);
        isF32("adamw grad", g);
        isF32("adamw m", mm);
        isF32("adamw v", vv);
        if (gs != null) isF32("adamw gradScale", gs);
        sameSize("adamw grad", p, g);
        sameSize("adamw m", p, mm);
        sameSize("adamw v", p, vv);
        written(p, mm, vv);
        double bc1 = 1.0 - Math.pow(s.beta1(), s.step());
        double bc2 = 1.0 - Math.pow(s.beta2(), s.step());
        float stepSize = (float) (s.lr() / bc1);
        float bc2Sqrt = (float) Math.sqrt(bc2);
        float decay = 1f - s.lr() * s.weightDecay();
        launch1d(fn("adamw.cu", "adamw"), p.numel(), p.buffer, p.bf(), g.buffer, mm.buffer, vv.buffer, p.numel(),
                s.beta1(), s.beta2(), s.eps(), decay, stepSize, bc2Sqrt, s.gradScale(), ptr(gs));
    }

    // ---------------------------------------------------------------- KV cache, decoding, sampling

    @Override
    public void kvAppend(Tensor cache, Tensor x, Tensor slots, int firstRow) {
        CudaTensor cc = c(cache, "cache"), xx = c(x, "x"), sl = c(slots, "slots");
        isInt("kvAppend slots", sl);
        if (!(cc.rank() == 2 || cc.rank() == 3)) throw bad("kvAppend", "cache must be [B, S, C] or [B, S], got " + cc.describe());
        int S = cc.dim(1), C = cc.rank() == 3 ? cc.dim(2) : 1, B = (int) sl.numel();
        if (!(firstRow >= 0 && firstRow + B <= cc.dim(0))) throw bad("kvAppend", "rows " + firstRow + ".." + (firstRow + B - 1) + " outside the cache " + cc.describe());
        // the kernels see the cache from row firstRow on (a byte offset into its buffer)
        Object rows = firstRow == 0 ? cc.buffer : cc.buffer.at((long) firstRow * S * C * cc.dtype().bytes());
        long tn = xx.numel() / Math.max(1, (long) B * C);
        if (xx.numel() != B * tn * C) throw bad("kvAppend", "x " + xx.describe() + " is not " + B + " x Tn rows of " + C);
        if (tn > S) throw bad("kvAppend", "x " + xx.describe() + " has more rows per sequence than the cache " + cc.describe());
        int Tn = (int) tn;
        written(cc);
        if (cc.dtype() == DType.I32 || xx.dtype() == DType.I32) {
            if (cc.dtype() != xx.dtype()) throw bad("kvAppend", "dtypes " + xx.describe() + " -> " + cc.describe());
            launch1d(fn("elementwise.cu", "kv_append_int"), (long) B * Tn * C, rows, xx.buffer, sl.buffer, B, S, Tn, C);
        } else {
            launch1d(fn("elementwise.cu", "kv_append_float"), (long) B * Tn * C, rows, cc.bf(), xx.buffer, xx.bf(),
                    sl.buffer, B, S, Tn, C);
        }
    }

    @Override
    public void decodeAttention(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor cacheMask, Tensor slots,
                                int heads, int kvHeads, int slidingWindow) {
        CudaTensor o = c(out, "out"), qq = c(q, "q"), kc = c(kCache, "kCache"), vc = c(vCache, "vCache"),
                m = c(cacheMask, "cacheMask"), sl = c(slots, "slots");
        isFloat("decodeAttention", o, qq, kc, vc);
        isInt("decodeAttention cacheMask", m);
        isInt("decodeAttention slots", sl);
        if (!(kc.rank() == 3 && vc.numel() == kc.numel())) throw bad("decodeAttention", "caches must be [B, S, kvHeads * D]: "
                + kc.describe() + ", " + vc.describe());
        int B = kc.dim(0), S = kc.dim(1);
        if (!(heads > 0 && kvHeads > 0 && heads % kvHeads == 0 && kc.dim(2) % kvHeads == 0)) throw bad("decodeAttention",
                heads + " heads, " + kvHeads + " kv heads, cache " + kc.describe());
        int D = kc.dim(2) / kvHeads;
        if (D > 256) throw bad("decodeAttention", "head size " + D + " is above 256");
        if (qq.numel() != (long) B * heads * D) throw bad("decodeAttention", "q " + qq.describe() + " for " + B + " x " + heads + " heads of " + D);
        sameSize("decodeAttention out", o, qq);
        if (!(m.numel() == (long) B * S && sl.numel() == B)) throw bad("decodeAttention", "cacheMask " + m.describe() + " / slots for cache " + kc.describe());
        written(o);
        float scale = (float) (1.0 / Math.sqrt(D));
        int vec = 16 / kc.dtype().bytes(), lanesPerKey = D / Math.max(1, vec);
        boolean vectorized = kc.dtype() == vc.dtype() && D % vec == 0 && lanesPerKey <= 32 && Integer.bitCount(lanesPerKey) == 1;
        if (vectorized) {
            List<String> defines = kc.dtype() == DType.BF16 ? List.of("HD=" + D, "ACT_BF16") : List.of("HD=" + D);
            int group = heads / kvHeads;
            launch(fn("decode.cu", defines, "decode_attention"), B, kvHeads, (group + 3) / 4, 128, 0, o.buffer, o.bf(),
                    qq.buffer, qq.bf(), kc.buffer, vc.buffer, m.buffer, sl.buffer, B, S, heads, kvHeads, slidingWindow, scale);
        } else {
            int bf = qq.bf() | kc.bf() << 1 | vc.bf() << 2 | o.bf() << 3;
            launch(fn("attention.cu", "decode_attention_simple"), (heads + 31) / 32, B, 1, 32, 0, o.buffer, qq.buffer,
                    kc.buffer, vc.buffer, m.buffer, sl.buffer, bf, B, S, heads, kvHeads, D, slidingWindow, scale);
        }
    }

    @Override
    public void sample(Tensor tokens, Tensor logits, Tensor finished, Tensor seqIds, Tensor steps,
                       long seed, SamplingParams params, int[] eosIds, int padId) {
        CudaTensor tok = c(tokens, "tokens"), z = c(logits, "logits"), fin = c(finished, "finished"),
                ids = c(seqIds, "seqIds"), st = c(steps, "steps");
        isFloat("sample", z);
        for (CudaTensor t : new CudaTensor[] {tok, fin, ids, st}) isInt("sample", t);
        int V = z.dim(-1), B = z.rows();
        if (!(tok.numel() == B && fin.numel() == B && ids.numel() == B && st.numel() == B)) throw bad("sample",
                "tokens, finished, seqIds and steps must have " + B + " elements");
        written(tok, fin);
        if (!(eosIds.length <= 8)) throw bad("sample", eosIds.length + " end-of-sequence ids; the CUDA backend takes up to 8");
        int[] e = new int[8];
        java.util.Arrays.fill(e, -1);
        System.arraycopy(eosIds, 0, e, 0, eosIds.length);
        launch(fn("sampling.cu", "sample_tokens"), B, 1, 1, 1024, 0, tok.buffer, z.buffer, z.bf(), fin.buffer, ids.buffer,
                st.buffer, B, V, seed, params.temperature(), params.topK(), params.topP(), eosIds.length,
                e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], padId);
    }

    /**
     * The first run records {@code step}'s launches into a CUDA graph (and runs it); later runs
     * replay the graph with one launch. bf16 shadows the step reads but does not write (the weights
     * of a decode step) are brought up to date before each replay, so that a replay after a
     * training step multiplies by the new weights. The graph lives until {@link #releaseCaptured},
     * or until {@value #MAX_LIVE_GRAPHS} newer steps hold graphs (see {@link LiveGraphs}).
     */
    @Override
    public Runnable capturable(Runnable step) {
        return new CapturedStep(step);
    }

    /** Destroys the graph recorded for {@code step} (from {@link #capturable}); the step must not run again. */
    @Override
    public void releaseCaptured(Runnable step) {
        if (step instanceof CapturedStep s && s.owner() == this) {
            s.released = true;
            graphs.release(s);
        }
    }

    /** How many recorded graphs this backend holds (each captured step that ran and was not released). */
    public int liveGraphs() {
        return graphs.size();
    }

    /**
     * Graphs kept at once when their steps are not released: one per generator a backend serves at
     * once (a model's generation, a speculative draft) is plenty; past it a step records again.
     */
    static final int MAX_LIVE_GRAPHS = 4;

    private final LiveGraphs<CapturedStep, CudaGraph> graphs = new LiveGraphs<>(MAX_LIVE_GRAPHS, this::destroy);

    private void destroy(CudaGraph g) {
        stream.synchronize(); // a replay may still be queued
        g.close();
    }

    private final class CapturedStep implements Runnable {
        private final Runnable step;
        private List<ShadowUse> uses;
        private boolean released;

        CapturedStep(Runnable step) {
            this.step = step;
        }

        CudaBackend owner() {
            return CudaBackend.this;
        }

        @Override
        public void run() {
            if (released) throw new IllegalStateException("a released captured step was run again");
            CudaGraph graph = graphs.get(this);
            if (graph == null) {
                graph = record();
                graphs.put(this, graph);
            } else {
                for (int i = 0; i < uses.size(); i++) {
                    CudaTensor t = uses.get(i).tensor();
                    if (t.buffer.isFreed()) throw new IllegalStateException("a captured step's tensor was freed");
                    if (t.shadowVersion != t.version) convert(stream, t);
                }
            }
            graph.launch();
        }

        /**
         * Records the step. A tensor the step reads through its shadow before writing it must be
         * converted inside the graph; when the first recording finds one, it records again with
         * those conversions in the graph.
         */
        private CudaGraph record() {
            stream.synchronize();
            java.util.Set<CudaTensor> inGraph = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
            for (int attempt = 0; attempt < 2; attempt++) {
                captureNumber++;
                captureShadowUses = new java.util.ArrayList<>();
                convertInGraph = inGraph;
                CudaGraph g;
                try {
                    g = CudaGraph.capture(stream, step);
                } finally {
                    uses = captureShadowUses;
                    captureShadowUses = null;
                    convertInGraph = java.util.Set.of();
                }
                boolean ok = true;
                for (ShadowUse u : uses) {
                    if (u.tensor().version != u.version()) {
                        inGraph.add(u.tensor());
                        ok = false;
                    }
                }
                if (ok) return g;
                g.close();
            }
            throw new IllegalStateException("could not record the step: it reads tensors before writing them");
        }
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        stream.synchronize();
        graphs.clear();
        cublas.close();
        if (side != null) side.close();
        stream.close();
    }
}
