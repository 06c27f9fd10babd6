package org.sparkrlhf.gpuexec.checkpoint;

/** A checkpoint or config that cannot be used; the message names the file and the field. */
public class CheckpointException extends RuntimeException {
    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
