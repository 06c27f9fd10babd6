package org.sparkrlhf.gpuexec.backend;

import java.util.Arrays;

/**
 * An opaque handle to memory owned by a {@link Backend}: row-major, contiguous, with a shape and a
 * {@link DType}. Only the backend that allocated a tensor reads or writes its elements; callers
 * move data in and out with {@link Backend#upload} and {@link Backend#download}.
 */
public interface Tensor {
    DType dtype();

    /** The shape; callers must not modify the returned array. */
    int[] shape();

    default int rank() {
        return shape().length;
    }

    default int dim(int i) {
        int[] s = shape();
        return s[i < 0 ? s.length + i : i];
    }

    default long numel() {
        long n = 1;
        for (int d : shape()) n *= d;
        return n;
    }

    /** Product of all dimensions but the last: the number of rows of a row-major matrix view. */
    default int rows() {
        int[] s = shape();
        long n = 1;
        for (int i = 0; i < s.length - 1; i++) n *= s[i];
        return Math.toIntExact(n);
    }

    default String describe() {
        return dtype() + Arrays.toString(shape());
    }
}
