package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;

/**
 * A message of floats of any length (a long: a reallocation's message to one peer can pass what
 * one Java array holds), read and written by ranges, so that a transport moves it in bounded
 * chunks without ever holding it whole ({@link Collective#exchangeMessages}).
 */
public interface FloatMessage {
    long length();

    /** Copies elements {@code [from, from + n)} of the message into {@code into[at ..]}. */
    void read(long from, float[] into, int at, int n);

    /** Stores {@code values[at .. at + n)} as elements {@code [from, from + n)} of the message. */
    void write(long from, float[] values, int at, int n);

    /**
     * Copies elements {@code [from, from + n)} of the message into elements {@code [0, n)} of the
     * float tensor {@code chunk} of {@code backend} (a transport that moves chunks on the device, as
     * NCCL). Here through a host array of the chunk; a message whose elements are that backend's
     * tensors copies on the device instead.
     */
    default void read(long from, Backend backend, Tensor chunk, int n) {
        float[] host = new float[n];
        read(from, host, 0, n);
        backend.uploadRange(chunk, 0, host, 0, n);
    }

    /**
     * Stores elements {@code [0, n)} of the float tensor {@code chunk} of {@code backend} (a chunk
     * received on the device) as elements {@code [from, from + n)} of the message; see
     * {@link #read(long, Backend, Tensor, int)}.
     */
    default void write(long from, Backend backend, Tensor chunk, int n) {
        float[] host = new float[n];
        backend.downloadRange(chunk, 0, host, 0, n);
        write(from, host, 0, n);
    }

    /** The length of this message's chunk that starts at {@code from}, chunks being {@code chunk} long: 0 past the end. */
    default int chunkLength(long from, int chunk) {
        return (int) Math.max(0, Math.min(chunk, length() - from));
    }

    /** A message that is a float tensor of {@code backend}: reads and writes are its ranged copies. */
    static FloatMessage of(Backend backend, Tensor tensor) {
        return new FloatMessage() {
            @Override
            public long length() {
                return tensor.numel();
            }

            @Override
            public void read(long from, float[] into, int at, int n) {
                backend.downloadRange(tensor, from, into, at, n);
            }

            @Override
            public void write(long from, float[] values, int at, int n) {
                backend.uploadRange(tensor, from, values, at, n);
            }
        };
    }

    /** A message that is one array: reads copy out of it, writes copy into it. */
    static FloatMessage of(float[] array) {
        return new FloatMessage() {
            @Override
            public long length() {
                return array.length;
            }

            @Override
            public void read(long from, float[] into, int at, int n) {
                System.arraycopy(array, Math.toIntExact(from), into, at, n);
            }

            @Override
            public void write(long from, float[] values, int at, int n) {
                System.arraycopy(values, at, array, Math.toIntExact(from), n);
            }
        };
    }
}
