package org.sparkrlhf.gpuexec.cuda;

import static jcuda.driver.JCudaDriver.*;

import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstreamCaptureMode;

/**
 * A sequence of launches recorded once from a stream and replayed with one cuGraphLaunch. A kernel
 * launched from Java costs about 11 us; replaying a captured decode step costs one launch. Whatever
 * the captured kernels read each step (positions, lengths, tokens, RNG counters) must live in device
 * memory at fixed addresses, since the kernel arguments are frozen at capture.
 */
public final class CudaGraph implements AutoCloseable {
    private final CudaStream stream;
    private final CUgraph graph;
    private final CUgraphExec exec;

    private CudaGraph(CudaStream stream, CUgraph graph, CUgraphExec exec) {
        this.stream = stream;
        this.graph = graph;
        this.exec = exec;
    }

    /** Records what {@code body} queues on {@code stream} (nothing runs) and instantiates it. */
    public static CudaGraph capture(CudaStream stream, Runnable body) {
        stream.context.makeCurrent();
        // Relaxed: a kernel module compiled and loaded on first use inside the step is allowed.
        cuStreamBeginCapture(stream.stream, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED);
        CUgraph graph = new CUgraph();
        try {
            body.run();
        } catch (RuntimeException | Error e) {
            try {
                cuStreamEndCapture(stream.stream, graph);
                cuGraphDestroy(graph);
            } catch (RuntimeException ignored) {
                // the capture is already invalid; the body's error is the one to report
            }
            throw e;
        }
        cuStreamEndCapture(stream.stream, graph);
        CUgraphExec exec = new CUgraphExec();
        cuGraphInstantiate(exec, graph, 0);
        return new CudaGraph(stream, graph, exec);
    }

    /** Queues one replay on the stream it was captured from. */
    public void launch() {
        stream.context.makeCurrent();
        cuGraphLaunch(exec, stream.stream);
    }

    @Override
    public void close() {
        stream.context.makeCurrent();
        cuGraphExecDestroy(exec);
        cuGraphDestroy(graph);
    }
}
