package org.sparkrlhf.gpuexec.profile;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.cuda.Precision;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.planner.cost.ProfileTable;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EngineProfilerTest {
    private static final ModelConfig TINY = ModelConfig.llama(96, 32, 64, 2, 4, 2, 64);

    @Test
    void gridFollowsTheWorkload() {
        ProfileGrid g = ProfileGrid.forWorkload(16, 3, 256, 4096);
        assertEquals(List.of(16, 19), g.passContexts());
        assertEquals(List.of(1, 4, 16, 64, 256), g.passSequences());
        assertEquals(3, g.decodeSteps());
        assertEquals(16, g.decodeContext());
    }

    @Test
    void tableRoundTripsThroughTheplannersReader(@TempDir Path dir) {
        roundTrip(new CpuBackend(1), "cpu", dir);
    }

    @Test
    void profilesOnTheGpuWhenOneIsThere(@TempDir Path dir) {
        Assumptions.assumeTrue(CudaBackend.isAvailable(), () -> "skipped: " + CudaBackend.unavailableReason());
        CudaBackend gpu = new CudaBackend(0, Precision.FP32);
        try {
            roundTrip(gpu, "gpu", dir);
        } finally {
            gpu.close();
        }
    }

    private static void roundTrip(Backend backend, String device, Path dir) {
        ProfileGrid grid = ProfileGrid.forWorkload(6, 4, 8, 4096);
        EngineProfile p = new EngineProfiler(backend, TINY, DType.F32, 3).run("tiny", device, grid);
        Set<String> ops = p.rows().stream().map(ProfileRow::op).collect(Collectors.toSet());
        assertEquals(Set.of("layer_fwd", "layer_bwd", "layer_decode", "head_fwd", "head_bwd", "value_head_fwd",
                "value_head_bwd", "head_decode"), ops);
        // two contexts x 3 sequence counts of fwd and bwd, both heads at the longer context, 3 decode batches
        // of a layer and of the rest of a step
        assertEquals(2 * 3 * 2 + 2 * 3 * 2 + 3 * 2, p.rows().size());

        Path csv = dir.resolve("tiny-" + device + ".csv");
        ProfileCsv.write(csv, p.rows());
        ProfileTable table = ProfileTable.empty().read(csv);
        for (ProfileRow r : p.rows()) {
            ProfileTable.Op op = ProfileTable.Op.valueOf(r.op().toUpperCase());
            double back = table.lookup("tiny", device, op, 1, r.tokens(), r.context());
            assertEquals(r.seconds(), back, r.seconds() * 1e-5, r.toString());
        }
        // no tp > 1 rows: the planner keeps its roofline there
        assertTrue(Double.isNaN(table.lookup("tiny", device, ProfileTable.Op.LAYER_FWD, 2, 60, 10)));
    }
}
