package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.realloc.ModelParameters;
import org.sparkrlhf.planner.realloc.Param;
import org.sparkrlhf.planner.realloc.ReallocationPlan;
import org.sparkrlhf.planner.realloc.ReallocationPlanner;
import org.sparkrlhf.planner.realloc.ReallocationSummary;
import org.sparkrlhf.planner.realloc.ShardLayout;
import org.sparkrlhf.planner.realloc.Slice;
import org.sparkrlhf.planner.realloc.Transfer;
import org.sparkrlhf.planner.search.CandidateSpace;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Property tests: a reallocation plan, applied to real float shards of a source layout, yields exactly
 * the shards of the destination layout, for many random layout pairs.
 */
class ReallocationPlanTest {
    private static final ClusterSpec CLUSTER = ClusterSpec.h100(2, 8);
    /** 16 heads and 8 key/value heads (grouped-query attention) allow tp 8; 6 layers allow pp up to 6. */
    private static final ModelSpec GQA = new ModelSpec("gqa", 6, 32, 48, 16, 8, 2, 40, false, false, false);
    /** Tied embeddings, biases, uneven splits (vocab 37, 5 layers). */
    private static final ModelSpec ODD = new ModelSpec("odd", 5, 24, 40, 4, 2, 6, 37, true, true, false);
    private static final ModelSpec VALUE = GQA.withValueHead();

    private final ReallocationPlanner planner = new ReallocationPlanner(CLUSTER);

    private static Map<String, float[]> fullTensors(ModelSpec m, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, float[]> t = new HashMap<>();
        for (Param p : ModelParameters.all(m)) {
            float[] a = new float[(int) p.elements()];
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) r.nextDouble(-1, 1);
            }
            t.put(p.name(), a);
        }
        return t;
    }

    private static float[] cut(float[] full, long cols, Slice s) {
        float[] out = new float[(int) s.elements()];
        int k = 0;
        for (long i = s.rowStart(); i < s.rowEnd(); i++) {
            for (long j = s.colStart(); j < s.colEnd(); j++) {
                out[k++] = full[(int) (i * cols + j)];
            }
        }
        return out;
    }

    /** Per device, per parameter: the shard a layout holds, cut from the full tensors. */
    private static Map<Integer, Map<String, float[]>> shards(ShardLayout l, Map<String, float[]> full) {
        Map<Integer, Map<String, float[]>> out = new HashMap<>();
        for (int g : l.mesh().gpus()) {
            Map<String, float[]> mine = new HashMap<>();
            for (Param p : ModelParameters.all(l.model())) {
                Slice s = l.slice(p, g);
                if (s != null) {
                    mine.put(p.name(), cut(full.get(p.name()), p.cols(), s));
                }
            }
            out.put(g, mine);
        }
        return out;
    }

    private void check(ModelSpec m, DeviceMesh srcMesh, ParallelStrategy src, DeviceMesh dstMesh, ParallelStrategy dst,
                       long seed) {
        String what = m.name() + " " + srcMesh.label() + " " + src.label() + " -> " + dstMesh.label() + " " + dst.label();
        Map<String, float[]> full = fullTensors(m, seed);
        ShardLayout a = new ShardLayout(m, srcMesh, src);
        ShardLayout b = new ShardLayout(m, dstMesh, dst);
        Map<Integer, Map<String, float[]>> have = shards(a, full);
        Map<String, Param> params = new HashMap<>();
        for (Param p : ModelParameters.all(m)) {
            params.put(p.name(), p);
        }
        // destination buffers, NaN until written
        Map<Integer, Map<String, float[]>> got = new HashMap<>();
        for (int g : dstMesh.gpus()) {
            Map<String, float[]> mine = new HashMap<>();
            for (Param p : ModelParameters.all(m)) {
                Slice s = b.slice(p, g);
                if (s != null) {
                    float[] buf = new float[(int) s.elements()];
                    java.util.Arrays.fill(buf, Float.NaN);
                    mine.put(p.name(), buf);
                }
            }
            got.put(g, mine);
        }
        ReallocationPlan plan = planner.plan(m, srcMesh, src, dstMesh, dst, 2);
        long[] sent = new long[CLUSTER.totalGpus()];
        long[] recvInter = new long[CLUSTER.totalGpus()];
        long[] local = new long[CLUSTER.totalGpus()];
        for (Transfer t : plan.transfers()) {
            Param p = params.get(t.param());
            Slice from = a.slice(p, t.srcGpu());
            Slice to = b.slice(p, t.dstGpu());
            if (from == null || to == null) {
                fail(what + ": transfer " + t + " reads or writes a shard that does not exist");
            }
            assertEquals(t.rows() * t.cols() * 2, t.bytes(), what);
            assertEquals(t.rowStart() - from.rowStart(), t.srcRow(), what);
            assertEquals(t.colStart() - from.colStart(), t.srcCol(), what);
            assertTrue(t.rowEnd() <= from.rowEnd() && t.colEnd() <= from.colEnd(), what + ": outside the source " + t);
            float[] src0 = have.get(t.srcGpu()).get(t.param());
            float[] dst0 = got.get(t.dstGpu()).get(t.param());
            for (long i = 0; i < t.rows(); i++) {
                for (long j = 0; j < t.cols(); j++) {
                    int si = (int) ((t.srcRow() + i) * from.cols() + t.srcCol() + j);
                    int di = (int) ((t.dstRow() + i) * to.cols() + t.dstCol() + j);
                    if (!Float.isNaN(dst0[di])) {
                        fail(what + ": element written twice by " + t);
                    }
                    dst0[di] = src0[si];
                }
            }
            if (t.local()) {
                local[t.dstGpu()] += t.bytes();
            } else {
                sent[t.srcGpu()] += t.bytes();
                if (!CLUSTER.sameNode(t.srcGpu(), t.dstGpu())) {
                    recvInter[t.dstGpu()] += t.bytes();
                }
            }
        }
        for (int g : dstMesh.gpus()) {
            for (Param p : ModelParameters.all(m)) {
                Slice s = b.slice(p, g);
                if (s == null) {
                    continue;
                }
                float[] want = cut(full.get(p.name()), p.cols(), s);
                float[] is = got.get(g).get(p.name());
                for (int i = 0; i < want.length; i++) {
                    if (Float.compare(want[i], is[i]) != 0) {
                        fail(what + ": device " + g + " " + p.name() + "[" + i + "] = " + is[i] + ", expected " + want[i]);
                    }
                }
            }
        }
        ReallocationSummary sum = planner.summarize(m, srcMesh, src, dstMesh, dst, 2);
        for (int g = 0; g < CLUSTER.totalGpus(); g++) {
            assertEquals(sent[g], sum.sentIntraNode(g) + sum.sentInterNode(g), what + " sent by " + g);
            assertEquals(recvInter[g], sum.receivedInterNode(g), what + " received over the network by " + g);
            assertEquals(local[g], sum.copiedLocally(g), what + " copied locally on " + g);
            assertEquals(plan.summary().sentInterNode(g), sum.sentInterNode(g), what);
        }
    }

    private static List<DeviceMesh[]> meshPairs() {
        List<DeviceMesh> ms = DeviceMesh.enumerate(CLUSTER);
        List<DeviceMesh[]> r = new ArrayList<>();
        for (DeviceMesh a : ms) {
            for (DeviceMesh b : ms) {
                if (a.size() >= 2 || b.size() >= 2) {
                    r.add(new DeviceMesh[]{a, b});
                }
            }
        }
        return r;
    }

    @Test
    void randomLayoutPairsReproduceTheDestinationShards() {
        SplittableRandom r = new SplittableRandom(42);
        List<DeviceMesh[]> pairs = meshPairs();
        ModelSpec[] models = {GQA, ODD, VALUE};
        for (int trial = 0; trial < 150; trial++) {
            ModelSpec m = models[trial % models.length];
            DeviceMesh[] mp = pairs.get(r.nextInt(pairs.size()));
            List<ParallelStrategy> la = CandidateSpace.layoutsFor(m, mp[0], CLUSTER);
            List<ParallelStrategy> lb = CandidateSpace.layoutsFor(m, mp[1], CLUSTER);
            check(m, mp[0], la.get(r.nextInt(la.size())), mp[1], lb.get(r.nextInt(lb.size())), trial);
        }
    }

    @Test
    void namedExtremes() {
        DeviceMesh node0 = new DeviceMesh(0, 8);
        DeviceMesh node1 = new DeviceMesh(8, 8);
        DeviceMesh both = new DeviceMesh(0, 16);
        ParallelStrategy tp8 = ParallelStrategy.of(1, 8, 1, 1);
        ParallelStrategy tp1 = ParallelStrategy.of(8, 1, 1, 1);
        check(GQA, node0, tp1, node0, tp8, 1);
        check(GQA, node0, tp8, node1, tp1, 2);
        check(GQA, both, ParallelStrategy.of(4, 1, 4, 1), both, ParallelStrategy.of(2, 8, 1, 1), 3);
        check(GQA, both, ParallelStrategy.of(2, 8, 1, 1), both, ParallelStrategy.of(1, 4, 4, 1), 4);
        check(GQA, both, new ParallelStrategy(16, 1, 1, 1, true), node1, ParallelStrategy.of(2, 2, 2, 1), 5);
        check(ODD, new DeviceMesh(4, 4), ParallelStrategy.of(1, 2, 2, 1), both, new ParallelStrategy(16, 1, 1, 1, true), 6);
        check(VALUE, node0, ParallelStrategy.of(1, 8, 1, 1), new DeviceMesh(12, 2), ParallelStrategy.of(1, 1, 2, 1), 7);
        var from = new org.sparkrlhf.planner.plan.CallPlacement("actor_train", both, ParallelStrategy.of(2, 8, 1, 4));
        var to = new org.sparkrlhf.planner.plan.CallPlacement("actor_gen", node1, ParallelStrategy.of(4, 2, 1, 1));
        assertEquals(planner.plan(GQA, both, from.strategy(), node1, to.strategy(), 2).transfers(),
                planner.plan(GQA, from, to, 2).transfers());
    }

    @Test
    void sameLayoutMovesNothingAndSourcesStayOnTheNode() {
        DeviceMesh node0 = new DeviceMesh(0, 8);
        ParallelStrategy s = ParallelStrategy.of(2, 2, 2, 1);
        ReallocationPlan same = planner.plan(GQA, node0, s, node0, s, 2);
        assertFalse(same.transfers().isEmpty());
        assertTrue(same.transfers().stream().allMatch(Transfer::local));
        assertEquals(0, same.summary().movedBytes());

        // four replicas on devices 0-3 feed four replicas on 4-7 of the same node: nothing crosses nodes and
        // every source sends the same number of bytes (least loaded first)
        ParallelStrategy dp4 = ParallelStrategy.of(4, 1, 1, 1);
        ReallocationSummary x = planner.summarize(GQA, new DeviceMesh(0, 4), dp4, new DeviceMesh(4, 4), dp4, 2);
        assertEquals(0, x.interNodeBytes());
        long each = x.sentIntraNode(0);
        assertEquals(2 * GQA.totalParams(), each);
        for (int g = 1; g < 4; g++) {
            assertEquals(each, x.sentIntraNode(g));
        }
        // a copy on another node is read from the node that has it, over the network, once per device
        ReallocationSummary y = planner.summarize(GQA, new DeviceMesh(0, 8), ParallelStrategy.of(1, 8, 1, 1),
                new DeviceMesh(8, 8), ParallelStrategy.of(1, 8, 1, 1), 2);
        assertEquals(2 * GQA.totalParams() + 2L * 7 * (GQA.layers() * 2L * GQA.hidden() + GQA.hidden()), y.interNodeBytes());
    }
}
