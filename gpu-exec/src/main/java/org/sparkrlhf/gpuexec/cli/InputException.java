package org.sparkrlhf.gpuexec.cli;

/** Bad input to a command (a file, line or field that cannot be used): exit status 2. */
public class InputException extends RuntimeException {
    public InputException(String message) {
        super(message);
    }
}
