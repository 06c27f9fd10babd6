package org.sparkrlhf.gpuexec.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The bf16 mode's activations on the GPU hold what the CPU backend's emulation of it holds (whose
 * ledger MemoryLedgerAgreementTest compares with the planner): after an inference-only forward, and
 * while a generator's caches and decode buffers are allocated, the GPU ledger's activation bytes
 * grow by exactly the CPU ledger's growth; bf16 activations need no bf16 shadow copies.
 */
@Timeout(120)
class CudaActivationMemoryTest {
    static final Batch BATCH = Batch.rightPadded(new int[][]{{1, 17, 300, 42, 5, 9, 77, 8}, {1, 3, 250, 8}, {1, 4, 5, 6, 7, 8}}, 0);

    record Bytes(long forward, long generator) {
    }

    /** Bytes live after an inference-only forward, and while a generator of two prompts and 5 new tokens is open. */
    static Bytes measure(org.sparkrlhf.gpuexec.backend.Backend backend, java.util.function.LongSupplier live) {
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            long base = live.getAsLong();
            model.forward(List.of(BATCH), true, false);
            long forward = live.getAsLong() - base;
            model.releaseActivations();
            long before = live.getAsLong();
            try (Generator g = new Generator(model)) {
                g.generate(new int[][]{{1, 17, 300}, {1, 3}}, new Generator.Options(5, SamplingParams.GREEDY, 0, new int[0], 0, false));
                return new Bytes(forward, live.getAsLong() - before);
            }
        }
    }

    @Test
    void bf16ActivationsAndCachesMatchTheCpuEmulationsLedger() {
        Gpu.assumeGpu();
        Bytes cpu;
        try (CpuBackend backend = new CpuBackend(1).storeActivationsAs(DType.BF16)) {
            cpu = measure(backend, backend::liveBytes);
        }
        try (CudaBackend gpu = new CudaBackend(0, Precision.BF16)) {
            assertEquals(DType.BF16, gpu.activationType());
            Bytes cuda = measure(gpu, () -> gpu.ledger().bytes(MemoryKind.ACTIVATIONS) + gpu.ledger().bytes(MemoryKind.KV_CACHE));
            assertEquals(cpu, cuda, "activation bytes on the CPU (bf16 emulated) and on the GPU");
        }
    }
}
