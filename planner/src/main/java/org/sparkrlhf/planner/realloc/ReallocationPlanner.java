package org.sparkrlhf.planner.realloc;

import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * Computes reallocation plans between two layouts of one model. For every destination device and
 * parameter slice it needs, the slice is cut along the source shards it overlaps; each piece comes from
 * the same device if it already holds it, else from a holder on the same node (the least loaded one),
 * else from the least loaded holder anywhere (load = bytes a device has been asked to send so far).
 * <p>
 * Layers whose source stage and destination stage are the same form a segment; every layer of a
 * segment has the same shapes and holders, so a segment is planned once on its first layer and the
 * choices are repeated for the others (the loads count all of them). {@link #summarize} runs the same
 * procedure without listing transfers: it is what the cost model calls during search.
 */
public final class ReallocationPlanner {
    private final ClusterSpec cluster;

    public ReallocationPlanner(ClusterSpec cluster) {
        this.cluster = cluster;
    }

    /** The full list of transfers, with byte counts at {@code dtypeBytes} bytes an element. */
    public ReallocationPlan plan(ModelSpec m, DeviceMesh srcMesh, ParallelStrategy src, DeviceMesh dstMesh,
                                 ParallelStrategy dst, int dtypeBytes) {
        List<Transfer> out = new ArrayList<>();
        ReallocationSummary s = run(m, srcMesh, src, dstMesh, dst, dtypeBytes, out);
        return new ReallocationPlan(out, s, dtypeBytes);
    }

    /** Per-device byte counts only (bf16 or whatever {@code dtypeBytes} says). */
    public ReallocationSummary summarize(ModelSpec m, DeviceMesh srcMesh, ParallelStrategy src, DeviceMesh dstMesh,
                                         ParallelStrategy dst, int dtypeBytes) {
        return run(m, srcMesh, src, dstMesh, dst, dtypeBytes, null);
    }

    private record Segment(List<Param> representative, int[] layers) {
    }

    private static List<Segment> segments(ModelSpec m, ShardLayout a, ShardLayout b) {
        List<Segment> segs = new ArrayList<>();
        segs.add(new Segment(List.of(ModelParameters.embedding(m)), new int[]{Param.EMBEDDING}));
        int i = 0;
        while (i < m.layers()) {
            int sa = a.stageOfLayer(i);
            int sb = b.stageOfLayer(i);
            int j = i + 1;
            while (j < m.layers() && a.stageOfLayer(j) == sa && b.stageOfLayer(j) == sb) {
                j++;
            }
            int[] ls = new int[j - i];
            for (int x = 0; x < ls.length; x++) {
                ls[x] = i + x;
            }
            segs.add(new Segment(ModelParameters.layer(m, i), ls));
            i = j;
        }
        segs.add(new Segment(ModelParameters.last(m), new int[]{Param.FINAL}));
        return segs;
    }

    /** Rows and columns held by (data rank, tensor rank) of a layout: {row0, row1, col0, col1}. */
    private static void range(Param p, ParallelStrategy s, int data, int tensor, long[] out) {
        out[0] = 0;
        out[1] = p.rows();
        out[2] = 0;
        out[3] = p.cols();
        if (s.zero3()) {
            out[0] = Slice.partStart(p.rows(), s.dp(), data);
            out[1] = Slice.partStart(p.rows(), s.dp(), data + 1);
            return;
        }
        switch (p.split()) {
            case ROWS, VOCAB_ROWS -> {
                out[0] = Slice.partStart(p.rows(), s.tp(), tensor);
                out[1] = Slice.partStart(p.rows(), s.tp(), tensor + 1);
            }
            case COLUMNS -> {
                out[2] = Slice.partStart(p.cols(), s.tp(), tensor);
                out[3] = Slice.partStart(p.cols(), s.tp(), tensor + 1);
            }
            case REPLICATED -> {
            }
        }
    }

    /** The slices of {@link #sourceGroups}'s groups for another parameter with the same kind of split. */
    private static void groupSlices(Param p, ParallelStrategy s, int groups, long[][] slices) {
        for (int gi = 0; gi < groups; gi++) {
            if (s.zero3()) {
                range(p, s, gi, 0, slices[gi]);
            } else {
                range(p, s, 0, p.split() == Split.REPLICATED ? 0 : gi, slices[gi]);
            }
        }
    }

    /**
     * The groups of source devices holding the same slice of {@code p}: slices and holders (with ZeRO-3
     * one group per data rank, possibly empty, so that parameters of one kind share the group order).
     */
    private static int sourceGroups(Param p, ShardLayout a, long[][] slices, int[][] holders, int[] counts,
                                    int[] groupOf) {
        ParallelStrategy s = a.strategy();
        int first = a.mesh().first();
        int groups = 0;
        long[] r = new long[4];
        if (s.zero3()) {
            for (int d = 0; d < s.dp(); d++) {
                range(p, s, d, 0, r);
                System.arraycopy(r, 0, slices[groups], 0, 4);
                holders[groups][0] = first + s.localRank(0, d, 0);
                groupOf[holders[groups][0]] = groups;
                counts[groups] = 1;
                groups++;
            }
            return groups;
        }
        boolean replicated = p.split() == Split.REPLICATED;
        int tensorGroups = replicated ? 1 : s.tp();
        for (int t = 0; t < tensorGroups; t++) {
            range(p, s, 0, t, r);
            System.arraycopy(r, 0, slices[groups], 0, 4);
            int k = 0;
            for (int st : a.stagesHolding(p)) {
                for (int d = 0; d < s.dp(); d++) {
                    if (replicated) {
                        for (int tt = 0; tt < s.tp(); tt++) {
                            int g = first + s.localRank(st, d, tt);
                            groupOf[g] = groups;
                            holders[groups][k++] = g;
                        }
                    } else {
                        int g = first + s.localRank(st, d, t);
                        groupOf[g] = groups;
                        holders[groups][k++] = g;
                    }
                }
            }
            counts[groups] = k;
            groups++;
        }
        return groups;
    }

    private ReallocationSummary run(ModelSpec m, DeviceMesh srcMesh, ParallelStrategy src, DeviceMesh dstMesh,
                                    ParallelStrategy dst, int dtypeBytes, List<Transfer> out) {
        for (DeviceMesh mesh : new DeviceMesh[]{srcMesh, dstMesh}) {
            String why = mesh.invalidReason(cluster);
            if (why != null) {
                throw new IllegalArgumentException(why);
            }
        }
        ShardLayout a = new ShardLayout(m, srcMesh, src);
        ShardLayout b = new ShardLayout(m, dstMesh, dst);
        ReallocationSummary sum = new ReallocationSummary(cluster.totalGpus());
        long[] load = new long[cluster.totalGpus()];
        int maxGroups = Math.max(src.dp(), src.tp());
        int[][] gHolders = new int[maxGroups][srcMesh.size()];
        int[] gCount = new int[maxGroups];
        int[] groupOf = new int[cluster.totalGpus()];
        int dstFirst = dstMesh.first();
        int maxClass = 8;
        long[][][] gSlice = new long[maxClass][maxGroups][4];
        long[][] want = new long[maxClass][4];
        long[] pieceBytes = new long[maxClass];
        long[][] piece = new long[maxClass][4];
        for (Segment seg : segments(m, a, b)) {
            int count = seg.layers.length;
            List<List<Param>> perLayer = null;
            if (out != null && seg.layers[0] >= 0 && seg.layers[0] != Param.FINAL) {
                perLayer = new ArrayList<>();
                for (int l : seg.layers) {
                    perLayer.add(ModelParameters.layer(m, l));
                }
            }
            // Parameters of a segment with the same kind of split share their holders: a source is
            // chosen once per class, destination device and source group, for all of them.
            for (Split cls : new Split[]{Split.ROWS, Split.COLUMNS, Split.REPLICATED}) {
                List<Integer> members = new ArrayList<>();
                for (int k = 0; k < seg.representative.size(); k++) {
                    Split sp = seg.representative.get(k).split();
                    if ((sp == Split.VOCAB_ROWS ? Split.ROWS : sp) == cls) {
                        members.add(k);
                    }
                }
                if (members.isEmpty()) {
                    continue;
                }
                int np = members.size();
                Param first = seg.representative.get(members.get(0));
                java.util.Arrays.fill(groupOf, srcMesh.first(), srcMesh.end(), -1);
                int groups = sourceGroups(first, a, gSlice[0], gHolders, gCount, groupOf);
                for (int j = 1; j < np; j++) {
                    groupSlices(seg.representative.get(members.get(j)), src, groups, gSlice[j]);
                }
                // groups are ordered along the split dimension: rows (ZeRO-3, row and vocab splits) or columns
                int dim = !src.zero3() && cls == Split.COLUMNS ? 2 : 0;
                for (int st : b.stagesHolding(first)) {
                    for (int dd = 0; dd < dst.dp(); dd++) {
                        for (int tt = 0; tt < dst.tp(); tt++) {
                            int d = dstFirst + dst.localRank(st, dd, tt);
                            int lo = groups;
                            for (int j = 0; j < np; j++) {
                                range(seg.representative.get(members.get(j)), dst, dd, tt, want[j]);
                                if (want[j][0] < want[j][1] && want[j][2] < want[j][3]) {
                                    lo = Math.min(lo, firstOverlap(gSlice[j], groups, dim, want[j][dim]));
                                }
                            }
                            for (int gi = lo; gi < groups; gi++) {
                                boolean past = true;
                                long total = 0;
                                for (int j = 0; j < np; j++) {
                                    long[] have = gSlice[j][gi];
                                    long[] w = want[j];
                                    pieceBytes[j] = 0;
                                    if (w[0] >= w[1] || w[2] >= w[3]) {
                                        continue;
                                    }
                                    if (have[dim] < w[dim + 1]) {
                                        past = false;
                                    }
                                    long r0 = Math.max(w[0], have[0]);
                                    long r1 = Math.min(w[1], have[1]);
                                    long c0 = Math.max(w[2], have[2]);
                                    long c1 = Math.min(w[3], have[3]);
                                    if (r0 >= r1 || c0 >= c1) {
                                        continue;
                                    }
                                    piece[j][0] = r0;
                                    piece[j][1] = r1;
                                    piece[j][2] = c0;
                                    piece[j][3] = c1;
                                    pieceBytes[j] = (r1 - r0) * (c1 - c0) * dtypeBytes;
                                    total += pieceBytes[j];
                                }
                                if (past) {
                                    break;
                                }
                                if (total == 0) {
                                    continue;
                                }
                                int from = chooseSource(d, gi, groupOf, srcMesh, gHolders[gi], gCount[gi], load);
                                long all = total * count;
                                if (from == d) {
                                    sum.local[d] += all;
                                } else {
                                    load[from] += all;
                                    if (cluster.sameNode(from, d)) {
                                        sum.sendIntra[from] += all;
                                        sum.recvIntra[d] += all;
                                    } else {
                                        sum.sendInter[from] += all;
                                        sum.recvInter[d] += all;
                                    }
                                }
                                if (out == null) {
                                    continue;
                                }
                                for (int j = 0; j < np; j++) {
                                    if (pieceBytes[j] == 0) {
                                        continue;
                                    }
                                    int k = members.get(j);
                                    long[] have = gSlice[j][gi];
                                    long[] pc = piece[j];
                                    for (int x = 0; x < count; x++) {
                                        String name = perLayer == null ? seg.representative.get(k).name()
                                                : perLayer.get(x).get(k).name();
                                        out.add(new Transfer(name, from, d, pc[0], pc[1], pc[2], pc[3], pc[0] - have[0],
                                                pc[2] - have[2], pc[0] - want[j][0], pc[2] - want[j][2], pieceBytes[j]));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return sum;
    }

    /** The first group whose range along {@code dim} ends after {@code from} (groups are sorted and disjoint). */
    private static int firstOverlap(long[][] slices, int groups, int dim, long from) {
        int lo = 0;
        int hi = groups;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (slices[mid][dim + 1] <= from) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    /**
     * The device that sends a piece held by group {@code gi} to {@code dst}: {@code dst} itself if it holds
     * it, else the least loaded holder on its node, else the least loaded holder (lowest index on ties).
     */
    private int chooseSource(int dst, int gi, int[] groupOf, DeviceMesh srcMesh, int[] holders, int n, long[] load) {
        if (srcMesh.contains(dst) && groupOf[dst] == gi) {
            return dst;
        }
        int g0 = Math.max(srcMesh.first(), cluster.nodeOf(dst) * cluster.gpusPerNode());
        int g1 = Math.min(srcMesh.end(), (cluster.nodeOf(dst) + 1) * cluster.gpusPerNode());
        int best = -1;
        for (int g = g0; g < g1; g++) {
            if (groupOf[g] == gi && (best < 0 || load[g] < load[best])) {
                best = g;
            }
        }
        if (best >= 0) {
            return best;
        }
        for (int i = 0; i < n; i++) {
            int g = holders[i];
            if (best < 0 || load[g] < load[best] || (load[g] == load[best] && g < best)) {
                best = g;
            }
        }
        return best;
    }
}
