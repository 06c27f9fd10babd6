package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.cuda.Precision;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Which engine a rank's models get, and the errors when the settings or the machine do not fit. */
class EngineBackendsTest {

    @Test
    void theDeviceIsTheTasksGpuElseTheEmbeddedOneElseNone() {
        assertNull(EngineBackends.deviceOf(null, EngineOptions.DEFAULT));
        assertEquals("3", EngineBackends.deviceOf("3", EngineOptions.DEFAULT));
        EngineOptions embedded = EngineOptions.parse(null, "1");
        assertEquals("1", EngineBackends.deviceOf(null, embedded));
        // Spark's resources win: the knob is refused with GPU executors anyway (see checkAgainst)
        assertEquals("0", EngineBackends.deviceOf("0", embedded));
    }

    @Test
    void aRankWithoutAGpuGetsANewCpuBackendPerModel() {
        Backend a = EngineBackends.forRank("1", null, EngineOptions.DEFAULT);
        Backend b = EngineBackends.forRank("1", null, EngineOptions.DEFAULT);
        assertInstanceOf(CpuBackend.class, a);
        assertInstanceOf(CpuBackend.class, b);
        // a CPU backend keeps per-model scratch and is used from one thread at a time
        assertNotSame(a, b);
    }

    @Test
    void bf16OnTheCpuEngineIsRefused() {
        EngineOptions bf16 = EngineOptions.parse("bf16", null);
        String message = assertThrows(UnsupportedOperationException.class,
                () -> EngineBackends.forRank("2", null, bf16)).getMessage();
        assertTrue(message.contains("executor 2") && message.contains("fp32 only")
                && message.contains(EngineOptions.PRECISION + "=bf16"), message);
    }

    @Test
    void aGpuWithoutACudaDriverIsAClearError() {
        Assumptions.assumeFalse(CudaBackend.isAvailable(), "this machine has a CUDA driver");
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> EngineBackends.forRank("7", "1", EngineOptions.DEFAULT));
        String message = e.getMessage();
        assertTrue(message.startsWith("executor 7 was given GPU 1 but cannot run the CUDA backend there: "), message);
        assertTrue(message.contains(CudaBackend.unavailableReason()), message);
        assertTrue(message.contains("spark.task.resource.gpu.amount"), message);
        // the embedded knob is named when it is what chose the GPU
        String embedded = assertThrows(IllegalStateException.class,
                () -> EngineBackends.forRank("driver", "0", EngineOptions.parse(null, "0"))).getMessage();
        assertTrue(embedded.contains("no " + EngineOptions.LOCAL_GPU), embedded);
    }

    @Test
    void rankContextBuildsOnItsDevice() {
        try (RankContext cpu = new RankContext("c", 0, 1, "4", "127.0.0.1", null, null, 1000)) {
            assertNull(cpu.device());
            assertInstanceOf(CpuBackend.class, cpu.backend());
        }
        Assumptions.assumeFalse(CudaBackend.isAvailable(), "this machine has a CUDA driver");
        try (RankContext gpu = new RankContext("actor_gen", 0, 1, "5", "127.0.0.1", "2", null, 1000)) {
            assertEquals("2", gpu.device());
            String message = assertThrows(IllegalStateException.class, gpu::backend).getMessage();
            assertTrue(message.startsWith("executor 5 was given GPU 2"), message);
            // a one-rank call needs no transport, so asking for it is fine even there
            assertEquals(1, gpu.communicator().size());
        }
    }

    @Test
    void optionsParseAndExplainTheirErrors() {
        assertEquals(new EngineOptions(Precision.FP32, null), EngineOptions.parse(null, null));
        assertEquals(new EngineOptions(Precision.BF16, "0"), EngineOptions.parse(" BF16 ", "0"));
        assertEquals(Precision.FP32, EngineOptions.parse("fp32", null).precision());
        String precision = assertThrows(IllegalArgumentException.class, () -> EngineOptions.parse("fp16", null)).getMessage();
        assertEquals(EngineOptions.PRECISION + ": 'fp16' is not a precision (fp32 or bf16)", precision);
        String gpu = assertThrows(IllegalArgumentException.class, () -> EngineOptions.parse(null, "cuda:0")).getMessage();
        assertTrue(gpu.startsWith(EngineOptions.LOCAL_GPU + ": 'cuda:0' is not a CUDA device ordinal"), gpu);
    }

    @Test
    void optionsAreCheckedAgainstTheCluster() {
        EngineOptions.DEFAULT.checkAgainst(false, "local[4]");
        EngineOptions.DEFAULT.checkAgainst(true, "spark://m:7077");
        EngineOptions.parse("bf16", null).checkAgainst(true, "yarn");
        EngineOptions.parse(null, "0").checkAgainst(false, "local[1]");
        EngineOptions.parse("bf16", "0").checkAgainst(false, "local");

        String bf16OnCpu = assertThrows(IllegalArgumentException.class,
                () -> EngineOptions.parse("bf16", null).checkAgainst(false, "local[2]")).getMessage();
        assertTrue(bf16OnCpu.contains("needs the CUDA backend"), bf16OnCpu);
        String twoSlots = assertThrows(IllegalArgumentException.class,
                () -> EngineOptions.parse(null, "0").checkAgainst(false, "local[2]")).getMessage();
        assertTrue(twoSlots.contains("needs one task slot") && twoSlots.contains("local[2]"), twoSlots);
        String withGpus = assertThrows(IllegalArgumentException.class,
                () -> EngineOptions.parse(null, "0").checkAgainst(true, "spark://m:7077")).getMessage();
        assertTrue(withGpus.contains("is for embedded runs"), withGpus);
    }
}
