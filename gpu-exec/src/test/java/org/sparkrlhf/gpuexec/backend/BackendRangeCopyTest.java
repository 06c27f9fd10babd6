package org.sparkrlhf.gpuexec.backend;

import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

/** The CPU backend's ranged copies against plain array copies ({@link RangeCopyCheck}), and ranges that do not fit refused. */
class BackendRangeCopyTest {
    @Test
    void rangesMatchArrayCopies() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            RangeCopyCheck.check(cpu);
        }
    }

    @Test
    void rangesPastTheEndAreRefused() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            Tensor t = cpu.allocate(DType.F32, 10);
            assertThrows(IllegalArgumentException.class, () -> cpu.uploadRange(t, 8, new float[3], 0, 3));
            assertThrows(IllegalArgumentException.class, () -> cpu.downloadRange(t, -1, new float[3], 0, 3));
            assertThrows(IllegalArgumentException.class, () -> cpu.copyRange(t, 0, t, 5, 6));
            assertThrows(IllegalArgumentException.class, () -> cpu.copyRange(cpu.allocate(DType.I32, 10), 0, t, 0, 1));
        }
    }
}
