package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.search.CandidateSpace;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MeshStrategyTest {
    private final ClusterSpec twoNodes = ClusterSpec.h100(2, 8);

    @Test
    void validMeshesArePiecesOfANodeOrWholeNodes() {
        List<DeviceMesh> all = DeviceMesh.enumerate(twoNodes);
        // 16 single devices, 8 pairs, 4 quads inside nodes; node 0, node 1, both nodes
        assertEquals(16 + 8 + 4 + 3, all.size());
        for (DeviceMesh m : all) {
            assertNull(m.invalidReason(twoNodes), m.toString());
        }
        assertNotNull(new DeviceMesh(2, 4).invalidReason(twoNodes));
        assertNotNull(new DeviceMesh(0, 3).invalidReason(twoNodes));
        assertNotNull(new DeviceMesh(4, 8).invalidReason(twoNodes));
        assertNotNull(new DeviceMesh(8, 16).invalidReason(twoNodes));
        assertEquals(2, new DeviceMesh(0, 16).nodes(8));
        assertTrue(new DeviceMesh(0, 8).overlaps(new DeviceMesh(4, 2)));
        assertFalse(new DeviceMesh(0, 4).overlaps(new DeviceMesh(4, 4)));
        ClusterSpec cpu = ClusterSpec.cpu(2, 2, 4L << 30);
        assertEquals(4 + 2 + 1, DeviceMesh.enumerate(cpu).size());
    }

    @Test
    void strategyValidity() {
        ModelSpec llama70 = ModelSpec.preset("llama2-70b");
        DeviceMesh node = new DeviceMesh(0, 8);
        assertNull(ParallelStrategy.of(1, 8, 1, 1).invalidReason(llama70, node, twoNodes));
        assertNotNull(ParallelStrategy.of(1, 4, 1, 1).invalidReason(llama70, node, twoNodes));
        ModelSpec gqa = ModelSpec.llama("gqa", 4, 64, 128, 8, 2, 100);
        assertNotNull(ParallelStrategy.of(2, 4, 1, 1).invalidReason(gqa, node, twoNodes));
        assertNull(ParallelStrategy.of(4, 2, 1, 1).invalidReason(gqa, node, twoNodes));
        assertNotNull(ParallelStrategy.of(1, 1, 8, 1).invalidReason(gqa, node, twoNodes));
        assertNotNull(ParallelStrategy.of(1, 16, 1, 1).invalidReason(ModelSpec.llama("w", 4, 64, 128, 16, 16, 100),
                new DeviceMesh(0, 16), twoNodes));
        assertThrows(IllegalArgumentException.class, () -> new ParallelStrategy(2, 2, 1, 1, true));
        ParallelStrategy s = ParallelStrategy.of(2, 2, 2, 4);
        for (int r = 0; r < 8; r++) {
            assertEquals(r, s.localRank(s.stageOf(r), s.dataRankOf(r), s.tensorRankOf(r)));
        }
        assertEquals(1, s.stageOf(4));
        assertEquals(1, s.dataRankOf(2));
        assertEquals(1, s.tensorRankOf(3));
        assertEquals(26, ParallelStrategy.stageStart(80, 3, 1));
        assertEquals(53, ParallelStrategy.stageStart(80, 3, 2));
    }

    @Test
    void layoutsOfAMeshCoverEveryFactorisation() {
        ModelSpec m = ModelSpec.preset("llama2-7b");
        List<ParallelStrategy> l = CandidateSpace.layoutsFor(m, new DeviceMesh(0, 16), twoNodes);
        // tp in {1,2,4,8} x pp | 16/tp, plus ZeRO-3: 5 + 4 + 3 + 2 + 1
        assertEquals(15, l.size());
        for (ParallelStrategy s : l) {
            assertEquals(16, s.size());
        }
    }
}
