package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Runs everywhere: with a GPU the driver is found; without one the backend says so in one line. */
@Timeout(60)
class CudaDriverTest {
    @Test
    void saysInOneLineWhetherCudaIsThere() {
        if (CudaBackend.isAvailable()) {
            assertNull(CudaBackend.unavailableReason());
            assertTrue(CudaDriver.deviceCount() > 0);
        } else {
            String reason = CudaBackend.unavailableReason();
            assertTrue(reason.startsWith("no CUDA driver: "), reason);
            assertFalse(reason.contains("\n"), reason);
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                    () -> new CudaBackend(0, Precision.FP32));
            assertEquals(reason, e.getMessage());
        }
    }

    @Test
    void sparkGpuAddressesAreCudaOrdinals() {
        assertEquals(0, CudaContext.ordinalOfGpuAddress("0"));
        assertEquals(3, CudaContext.ordinalOfGpuAddress(" 3 "));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaContext.ordinalOfGpuAddress("GPU-1"));
        assertTrue(e.getMessage().contains("GPU-1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> CudaContext.ordinalOfGpuAddress("-1"));
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals(1.0f, Bf16.round(1.0f));
        assertEquals(1.0f, Bf16.round(1.0f + 0x1p-8f)); // a tie: down to the even mantissa
        assertEquals(1.0f + 0x1p-6f, Bf16.round(1.0f + 0x1p-7f + 0x1p-8f)); // a tie: up to the even mantissa
        assertEquals(1.0f + 0x1p-7f, Bf16.round(1.0f + 0x1p-8f + 0x1p-12f));
        assertEquals(1.0f, Bf16.round(1.0f + 0x1p-9f));
        assertTrue(Float.isNaN(Bf16.round(Float.NaN)));
    }
}
