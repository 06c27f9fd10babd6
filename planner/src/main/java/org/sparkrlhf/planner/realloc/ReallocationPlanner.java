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
 * else from the least loaded holder anywhere (load = bytes a device has been asked to send so far;
 * ties go to the lowest device index).
 * <p>
 * Layers whose source stage and destination stage are the same form a segment; every layer of a
 * segment has the same shapes and holders, so a segment is planned once and the choices repeated for
 * its other layers (the loads count all of them). Inside a segment, parameters cut the same way (rows,
 * columns, or replicated) have the same holders, and one source is chosen per such class, destination
 * device and source shard, for all of them. {@link #summarize} runs the same procedure without listing
 * transfers: it is what the cost model calls during search.
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

    /** The transfers that move {@code m} from where call {@code from} holds it to where {@code to} needs it. */
    public ReallocationPlan plan(ModelSpec m, org.sparkrlhf.planner.plan.CallPlacement from,
                                 org.sparkrlhf.planner.plan.CallPlacement to, int dtypeBytes) {
        return plan(m, from.mesh(), from.strategy(), to.mesh(), to.strategy(), dtypeBytes);
    }

    /** Per-device byte counts only. */
    public ReallocationSummary summarize(ModelSpec m, DeviceMesh srcMesh, ParallelStrategy src, DeviceMesh dstMesh,
                                         ParallelStrategy dst, int dtypeBytes) {
        return run(m, srcMesh, src, dstMesh, dst, dtypeBytes, null);
    }

    /** A run of layers [first, first + count) (or the embedding, or the final norm and head). */
    private record Segment(List<Param> params, int first, int count) {
    }

    private static List<Segment> segments(ModelSpec m, ShardLayout a, ShardLayout b, List<Param> layerTemplate) {
        List<Segment> segs = new ArrayList<>();
        segs.add(new Segment(List.of(ModelParameters.embedding(m)), Param.EMBEDDING, 1));
        int i = 0;
        while (i < m.layers()) {
            int sa = a.stageOfLayer(i);
            int sb = b.stageOfLayer(i);
            int j = i + 1;
            while (j < m.layers() && a.stageOfLayer(j) == sa && b.stageOfLayer(j) == sb) {
                j++;
            }
            segs.add(new Segment(layerTemplate, i, j - i));
            i = j;
        }
        segs.add(new Segment(ModelParameters.last(m), Param.FINAL, 1));
        return segs;
    }

    /** The stages of a layout holding the parameters of a segment. */
    private static int[] stages(ShardLayout l, Segment seg) {
        int last = l.strategy().pp() - 1;
        if (seg.first == Param.EMBEDDING) {
            ModelSpec m = l.model();
            return m.tieEmbeddings() && !m.valueHead() && last > 0 ? new int[]{0, last} : new int[]{0};
        }
        if (seg.first == Param.FINAL) {
            return new int[]{last};
        }
        return new int[]{l.stageOfLayer(seg.first)};
    }

    /** Rows and columns held by (data rank, tensor rank) of a layout, into {@code out[at..at+4)}. */
    private static void range(Param p, ParallelStrategy s, int data, int tensor, long[] out, int at) {
        out[at] = 0;
        out[at + 1] = p.rows();
        out[at + 2] = 0;
        out[at + 3] = p.cols();
        if (s.zero3()) {
            out[at] = Slice.partStart(p.rows(), s.dp(), data);
            out[at + 1] = Slice.partStart(p.rows(), s.dp(), data + 1);
            return;
        }
        switch (p.split()) {
            case ROWS, VOCAB_ROWS -> {
                out[at] = Slice.partStart(p.rows(), s.tp(), tensor);
                out[at + 1] = Slice.partStart(p.rows(), s.tp(), tensor + 1);
            }
            case COLUMNS -> {
                out[at + 2] = Slice.partStart(p.cols(), s.tp(), tensor);
                out[at + 3] = Slice.partStart(p.cols(), s.tp(), tensor + 1);
            }
            case REPLICATED -> {
            }
        }
    }

    private static Split classOf(Param p) {
        return p.split() == Split.VOCAB_ROWS ? Split.ROWS : p.split();
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
        int[] groupOf = new int[cluster.totalGpus()];
        int maxGroups = Math.max(src.dp(), src.tp());
        // source groups of a class, compressed: holders of group g are holders[start[g] .. start[g + 1])
        int[] holderStart = new int[maxGroups + 1];
        int[] holders = new int[srcMesh.size()];
        int maxClass = 8;
        long[] have = new long[maxClass * maxGroups * 4];
        long[] want = new long[maxClass * 4];
        long[] piece = new long[maxClass * 4];
        long[] pieceBytes = new long[maxClass];
        int[] members = new int[maxClass];
        List<Param> template = ModelParameters.layer(m, 0);
        int dstFirst = dstMesh.first();
        int srcFirst = srcMesh.first();
        for (Segment seg : segments(m, a, b, template)) {
            int[] srcStages = stages(a, seg);
            int[] dstStages = stages(b, seg);
            for (Split cls : new Split[]{Split.ROWS, Split.COLUMNS, Split.REPLICATED}) {
                int np = 0;
                for (int k = 0; k < seg.params.size(); k++) {
                    if (classOf(seg.params.get(k)) == cls) {
                        if (np == maxClass) {
                            throw new IllegalStateException("more than " + maxClass + " parameters of one kind in a layer");
                        }
                        members[np++] = k;
                    }
                }
                if (np == 0) {
                    continue;
                }
                // the source groups: one per data rank with ZeRO-3, else one per tensor rank (one if replicated)
                java.util.Arrays.fill(groupOf, srcFirst, srcMesh.end(), -1);
                int groups;
                int nh = 0;
                if (src.zero3()) {
                    groups = src.dp();
                    for (int d = 0; d < groups; d++) {
                        holderStart[d] = nh;
                        int g = srcFirst + src.localRank(0, d, 0);
                        holders[nh++] = g;
                        groupOf[g] = d;
                    }
                } else {
                    boolean replicated = cls == Split.REPLICATED;
                    groups = replicated ? 1 : src.tp();
                    for (int t = 0; t < groups; t++) {
                        holderStart[t] = nh;
                        for (int st : srcStages) {
                            for (int d = 0; d < src.dp(); d++) {
                                for (int tt = replicated ? 0 : t; tt < (replicated ? src.tp() : t + 1); tt++) {
                                    int g = srcFirst + src.localRank(st, d, tt);
                                    holders[nh++] = g;
                                    groupOf[g] = t;
                                }
                            }
                        }
                    }
                }
                holderStart[groups] = nh;
                for (int j = 0; j < np; j++) {
                    Param p = seg.params.get(members[j]);
                    for (int gi = 0; gi < groups; gi++) {
                        range(p, src, src.zero3() ? gi : 0, src.zero3() ? 0 : gi, have, (j * maxGroups + gi) * 4);
                    }
                }
                // groups are ordered along the split dimension: rows (ZeRO-3, row and vocab splits) or columns
                int dim = !src.zero3() && cls == Split.COLUMNS ? 2 : 0;
                for (int st : dstStages) {
                    for (int dd = 0; dd < dst.dp(); dd++) {
                        for (int tt = 0; tt < dst.tp(); tt++) {
                            int d = dstFirst + dst.localRank(st, dd, tt);
                            int lo = groups;
                            for (int j = 0; j < np; j++) {
                                range(seg.params.get(members[j]), dst, dd, tt, want, j * 4);
                                if (want[j * 4] < want[j * 4 + 1] && want[j * 4 + 2] < want[j * 4 + 3]) {
                                    lo = Math.min(lo, firstOverlap(have, j * maxGroups, groups, dim, want[j * 4 + dim]));
                                }
                            }
                            for (int gi = lo; gi < groups; gi++) {
                                boolean past = true;
                                long total = 0;
                                for (int j = 0; j < np; j++) {
                                    int h = (j * maxGroups + gi) * 4;
                                    int w = j * 4;
                                    pieceBytes[j] = 0;
                                    if (want[w] >= want[w + 1] || want[w + 2] >= want[w + 3]) {
                                        continue;
                                    }
                                    if (have[h + dim] < want[w + dim + 1]) {
                                        past = false;
                                    }
                                    long r0 = Math.max(want[w], have[h]);
                                    long r1 = Math.min(want[w + 1], have[h + 1]);
                                    long c0 = Math.max(want[w + 2], have[h + 2]);
                                    long c1 = Math.min(want[w + 3], have[h + 3]);
                                    if (r0 >= r1 || c0 >= c1) {
                                        continue;
                                    }
                                    piece[w] = r0;
                                    piece[w + 1] = r1;
                                    piece[w + 2] = c0;
                                    piece[w + 3] = c1;
                                    pieceBytes[j] = (r1 - r0) * (c1 - c0) * dtypeBytes;
                                    total += pieceBytes[j];
                                }
                                if (past) {
                                    break;
                                }
                                if (total == 0) {
                                    continue;
                                }
                                int from = chooseSource(d, gi, groupOf, srcMesh, holders, holderStart[gi],
                                        holderStart[gi + 1], load);
                                long all = total * seg.count;
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
                                if (out != null) {
                                    emit(out, m, seg, members, np, pieceBytes, piece, have, want, maxGroups, gi, from, d);
                                }
                            }
                        }
                    }
                }
            }
        }
        return sum;
    }

    private static void emit(List<Transfer> out, ModelSpec m, Segment seg, int[] members, int np, long[] pieceBytes,
                             long[] piece, long[] have, long[] want, int maxGroups, int gi, int from, int d) {
        for (int j = 0; j < np; j++) {
            if (pieceBytes[j] == 0) {
                continue;
            }
            int k = members[j];
            int h = (j * maxGroups + gi) * 4;
            int w = j * 4;
            for (int x = 0; x < seg.count; x++) {
                String name = seg.first >= 0 && seg.first != Param.FINAL
                        ? ModelParameters.layer(m, seg.first + x).get(k).name() : seg.params.get(k).name();
                out.add(new Transfer(name, from, d, piece[w], piece[w + 1], piece[w + 2], piece[w + 3],
                        piece[w] - have[h], piece[w + 2] - have[h + 2], piece[w] - want[w], piece[w + 2] - want[w + 2],
                        pieceBytes[j]));
            }
        }
    }

    /** The first group whose range along {@code dim} ends after {@code from} (groups are sorted and disjoint). */
    private static int firstOverlap(long[] have, int base, int groups, int dim, long from) {
        int lo = 0;
        int hi = groups;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (have[(base + mid) * 4 + dim + 1] <= from) {
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
    private int chooseSource(int dst, int gi, int[] groupOf, DeviceMesh srcMesh, int[] holders, int from, int to,
                             long[] load) {
        if (srcMesh.contains(dst) && groupOf[dst] == gi) {
            return dst;
        }
        int node = cluster.nodeOf(dst);
        int g0 = Math.max(srcMesh.first(), node * cluster.gpusPerNode());
        int g1 = Math.min(srcMesh.end(), (node + 1) * cluster.gpusPerNode());
        int best = -1;
        for (int g = g0; g < g1; g++) {
            if (groupOf[g] == gi && (best < 0 || load[g] < load[best])) {
                best = g;
            }
        }
        if (best >= 0) {
            return best;
        }
        for (int i = from; i < to; i++) {
            int g = holders[i];
            if (best < 0 || load[g] < load[best] || (load[g] == load[best] && g < best)) {
                best = g;
            }
        }
        return best;
    }
}
