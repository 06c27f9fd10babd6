package org.sparkrlhf.gpuexec.cuda;

import static jcuda.driver.JCudaDriver.*;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;

import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;

/**
 * The kernels of one device: CUDA C sources kept as resources next to this class, compiled by NVRTC
 * on first use for the device's architecture with a set of -D definitions (the element type, a head
 * size), loaded as modules and cached for the life of the context.
 */
public final class KernelModules {
    private static final String RESOURCE_DIR = "/org/sparkrlhf/gpuexec/cuda/";
    /** Passed as a kernel argument where a pointer may be null. */
    public static final Object NULL = new Object();

    private final CudaContext context;
    private final ConcurrentHashMap<String, CUmodule> modules = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, CUfunction> functions = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<CUfunction, Integer> sharedMemoryLimit = new ConcurrentHashMap<>();

    KernelModules(CudaContext context) {
        this.context = context;
    }

    /** The function {@code name} of {@code source} (a .cu resource) compiled with {@code defines}. */
    public CUfunction function(String source, List<String> defines, String name) {
        String moduleKey = source + "|" + String.join(" ", defines);
        return functions.computeIfAbsent(moduleKey + "|" + name, k -> {
            CUmodule module = modules.computeIfAbsent(moduleKey, mk -> compile(source, defines));
            context.makeCurrent();
            CUfunction f = new CUfunction();
            try {
                cuModuleGetFunction(f, module, name);
            } catch (RuntimeException e) {
                throw new IllegalStateException("kernel " + name + " is not in " + source + ": " + e.getMessage(), e);
            }
            return f;
        });
    }

    private CUmodule compile(String source, List<String> defines) {
        String text = "#line 1 \"common.cuh\"\n" + resource("common.cuh") + "\n#line 1 \"" + source + "\"\n"
                + resource(source);
        List<String> options = new ArrayList<>();
        for (String d : defines) options.add("-D" + d);
        Nvrtc.Image image = Nvrtc.compile(text, source, context.computeMajor * 10 + context.computeMinor, options);
        context.makeCurrent();
        CUmodule module = new CUmodule();
        if (image.isCubin()) {
            cuModuleLoadData(module, image.bytes());
        } else {
            cuModuleLoadData(module, image.bytes()); // NUL-terminated PTX; the driver compiles it
        }
        return module;
    }

    static String resource(String name) {
        try (InputStream in = KernelModules.class.getResourceAsStream(RESOURCE_DIR + name)) {
            if (in == null) throw new IllegalStateException("kernel source " + RESOURCE_DIR + name + " is missing from the jar");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read kernel source " + name, e);
        }
    }

    /**
     * Queues {@code f} on {@code stream}. Arguments: CudaBuffer or CUdeviceptr (device pointers),
     * Integer, Long, Float, or {@link #NULL} for a null pointer.
     */
    public void launch(CudaStream stream, CUfunction f, int gridX, int gridY, int gridZ, int blockX,
                       int sharedBytes, Object... args) {
        if (gridX <= 0 || gridY <= 0 || gridZ <= 0) return; // nothing to do (an empty batch)
        if (gridY > 65535 || gridZ > 65535) throw new IllegalArgumentException("grid " + gridX + "x" + gridY + "x" + gridZ);
        context.makeCurrent();
        if (sharedBytes > 48 * 1024) {
            Integer set = sharedMemoryLimit.get(f);
            if (set == null || set < sharedBytes) {
                if (sharedBytes > context.maxSharedMemoryPerBlockOptin) {
                    throw new UnsupportedOperationException("a kernel needs " + sharedBytes + " bytes of shared memory; "
                            + context + " allows " + context.maxSharedMemoryPerBlockOptin);
                }
                cuFuncSetAttribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes);
                sharedMemoryLimit.put(f, sharedBytes);
            }
        }
        NativePointerObject[] params = new NativePointerObject[args.length];
        for (int i = 0; i < args.length; i++) params[i] = param(args[i], i);
        cuLaunchKernel(f, gridX, gridY, gridZ, blockX, 1, 1, sharedBytes, stream.stream, Pointer.to(params), null);
    }

    private static Pointer param(Object a, int i) {
        if (a instanceof CudaBuffer b) return Pointer.to(b.ptr);
        if (a instanceof CUdeviceptr p) return Pointer.to(p);
        if (a instanceof Integer v) return Pointer.to(new int[] {v});
        if (a instanceof Float v) return Pointer.to(new float[] {v});
        if (a instanceof Long v) return Pointer.to(new long[] {v});
        if (a == NULL) return Pointer.to(new long[] {0L});
        throw new IllegalArgumentException("kernel argument " + i + " of unsupported type "
                + (a == null ? "null" : a.getClass().getName()));
    }
}
