package org.sparkrlhf.gpuexec.cuda;

import static jcuda.driver.JCudaDriver.*;

import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/** A stream of one context: all work of one backend instance goes through one, in order. */
public final class CudaStream implements AutoCloseable {
    final CudaContext context;
    final CUstream stream;
    /** The raw CUstream, for cuBLAS and NCCL calls made through JNA. */
    final long handle;

    public CudaStream(CudaContext context) {
        this.context = context;
        context.makeCurrent();
        stream = new CUstream();
        cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING);
        handle = CudaDriver.address(stream);
    }

    public CudaContext context() {
        return context;
    }

    public void synchronize() {
        context.makeCurrent();
        cuStreamSynchronize(stream);
    }

    /** Milliseconds the GPU spent on what {@code work} queued on this stream (waits for it). */
    public float timeMillis(Runnable work) {
        context.makeCurrent();
        CUevent start = new CUevent(), stop = new CUevent();
        cuEventCreate(start, CUevent_flags.CU_EVENT_DEFAULT);
        cuEventCreate(stop, CUevent_flags.CU_EVENT_DEFAULT);
        try {
            cuEventRecord(start, stream);
            work.run();
            cuEventRecord(stop, stream);
            cuEventSynchronize(stop);
            float[] ms = {0};
            cuEventElapsedTime(ms, start, stop);
            return ms[0];
        } finally {
            cuEventDestroy(start);
            cuEventDestroy(stop);
        }
    }

    @Override
    public void close() {
        context.makeCurrent();
        cuStreamSynchronize(stream);
        cuStreamDestroy(stream);
    }
}
