package org.sparkrlhf.gpuexec.backend.cpu;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.concurrent.RecursiveAction;

/**
 * Loads, before any kernel runs, a second concrete subtype of the two abstract classes the kernels
 * call through: {@link RecursiveAction} ({@link Parallel}'s chunks) and {@link FloatBuffer}
 * (OpenBLAS's native rows, direct buffers).
 *
 * <p>Why: while a JVM has loaded only one concrete subtype of an abstract class, C2 compiles calls
 * through it as calls to that one class, with no check, and discards every such compilation when
 * a second subtype loads. On an executor that happened mid-run, after the kernels were compiled:
 * Parquet's shaded fastutil sorts (more RecursiveActions) and the collectives' little-endian heap
 * views (ByteBufferAsFloatBufferL) loaded about 70 s into a GRPO run on local-cluster and
 * invalidated 30 + 25 compiled kernel paths at once (-XX:+LogCompilation). With both subtypes
 * loaded first, C2 compiles those calls checked against the type it has seen, and the same run
 * invalidated none. It is not what keeps C2 busy on the executors: they compiled about as many
 * engine methods with C2 either way (321 and 315 against 336 and 311), mostly for the shapes the
 * profile's passes and the run's calls bring.
 */
final class LoadedSubtypes {
    private LoadedSubtypes() {
    }

    /** Never run: a second concrete RecursiveAction. */
    private static final class Idle extends RecursiveAction {
        @Override
        protected void compute() {
        }
    }

    /**
     * Loads the subtypes: run once, by the interpreter (a class initializer), so the expressions'
     * values need no keeping. One more subtype of each is enough: with two loaded, C2 assumes none.
     */
    static void load() {
        new Idle();
        ByteBuffer.allocate(Float.BYTES).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    }
}
