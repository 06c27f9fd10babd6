package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Tensor;

/**
 * Row edits of a trunk forward (S3D's draft under training): the embedding output's rows
 * {@code inputRows} (I32 [M]) are replaced by {@code inputs} ([M, C]), and the rows
 * {@code bypassRows} (I32 [R]) pass unchanged through the layers [bypassFrom, bypassTo). The
 * scratch buffers are [M, C] and [R, C].
 */
record RowEdits(Tensor inputRows, Tensor inputs, Tensor inputScratch,
                Tensor bypassRows, Tensor bypassScratch, int bypassFrom, int bypassTo) {
    boolean bypasses(int layer) {
        return layer >= bypassFrom && layer < bypassTo;
    }
}
