package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A CPU backend seen through a counting hook: every float array that goes into or comes out of one
 * of its methods (an upload's values, a download's result, a ranged copy's host chunk) is measured,
 * so that a test knows the largest host array a caller moved through it.
 */
final class HostArrayCountingBackend {
    final CpuBackend cpu = new CpuBackend();
    private final AtomicInteger largest = new AtomicInteger();
    final Backend backend = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
            (proxy, method, args) -> {
                if (args != null) {
                    for (Object a : args) {
                        measure(a);
                    }
                }
                try {
                    Object result = method.invoke(cpu, args);
                    measure(result);
                    return result;
                } catch (InvocationTargetException e) {
                    throw e.getCause();
                }
            });

    private void measure(Object value) {
        if (value instanceof float[] a) {
            largest.accumulateAndGet(a.length, Math::max);
        }
    }

    /** The length of the largest float array that went through the backend since the last {@link #reset}. */
    int largest() {
        return largest.get();
    }

    void reset() {
        largest.set(0);
    }
}
