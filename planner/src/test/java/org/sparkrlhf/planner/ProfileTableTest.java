package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.planner.cost.ComputeModel;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.spec.GpuSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProfileTableTest {
    @Test
    void interpolatesInTokensAtTheNearestContext(@TempDir Path dir) throws Exception {
        Path csv = dir.resolve("p.csv");
        Files.writeString(csv, """
                model,gpu,op,tp,tokens,context,seconds
                tiny,cpu,layer_fwd,1,100,128,0.010
                tiny,cpu,layer_fwd,1,300,128,0.030
                tiny,cpu,layer_fwd,1,100,1024,0.050
                # comment
                tiny,cpu,layer_decode,2,8,512,0.002
                """);
        ProfileTable t = ProfileTable.empty().read(csv);
        assertEquals(0.020, t.lookup("tiny", "cpu", ProfileTable.Op.LAYER_FWD, 1, 200, 128), 1e-12);
        assertEquals(0.020, t.lookup("tiny", "cpu", ProfileTable.Op.LAYER_FWD, 1, 200, 200), 1e-12);
        assertEquals(0.010, t.lookup("tiny", "cpu", ProfileTable.Op.LAYER_FWD, 1, 10, 128), 1e-12);
        assertEquals(0.060, t.lookup("tiny", "cpu", ProfileTable.Op.LAYER_FWD, 1, 600, 128), 1e-12);
        assertEquals(0.050, t.lookup("tiny", "cpu", ProfileTable.Op.LAYER_FWD, 1, 100, 900), 1e-12);
        assertTrue(Double.isNaN(t.lookup("tiny", "cpu", ProfileTable.Op.LAYER_FWD, 2, 100, 128)));
        assertTrue(Double.isNaN(t.lookup("other", "cpu", ProfileTable.Op.LAYER_FWD, 1, 100, 128)));

        ModelSpec tiny = ModelSpec.llama("tiny", 2, 64, 128, 4, 4, 100);
        GpuSpec cpu = GpuSpec.cpu(1L << 30);
        ComputeModel measured = new ComputeModel(cpu, CostConstants.calibrated(), t);
        ComputeModel roofline = new ComputeModel(cpu, CostConstants.calibrated(), ProfileTable.empty());
        assertEquals(0.020, measured.layerForward(tiny, 200, 128, 1), 1e-12);
        assertEquals(0.002, measured.layerDecode(tiny, 8, 512, 2), 1e-12);
        assertNotEquals(0.020, roofline.layerForward(tiny, 200, 128, 1));
        assertEquals(roofline.layerBackward(tiny, 200, 128, 1), measured.layerBackward(tiny, 200, 128, 1));
    }

    @Test
    void badRowsNameTheFileAndLine(@TempDir Path dir) throws Exception {
        Path csv = dir.resolve("bad.csv");
        Files.writeString(csv, "model,gpu,op,tp,tokens,context,seconds\ntiny,cpu,layer_fwd,1,100,128,fast\n");
        var e = assertThrows(IllegalArgumentException.class, () -> ProfileTable.empty().read(csv));
        assertTrue(e.getMessage().contains("bad.csv:2") && e.getMessage().contains("seconds"), e.getMessage());
        Files.writeString(csv, "model,gpu,op,tp,tokens,context,seconds\ntiny,cpu,attention,1,100,128,0.1\n");
        e = assertThrows(IllegalArgumentException.class, () -> ProfileTable.empty().read(csv));
        assertTrue(e.getMessage().contains("'op'"), e.getMessage());
        Files.writeString(csv, "op,tp\n");
        e = assertThrows(IllegalArgumentException.class, () -> ProfileTable.empty().read(csv));
        assertTrue(e.getMessage().contains("bad.csv:1"), e.getMessage());
    }
}
