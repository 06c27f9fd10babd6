package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The TCP mesh between ranks, each rank a thread of this JVM; the rendezvous is an in-memory all-gather. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TcpCommunicatorTest {

    private static <R> List<R> onRanks(int n, Function<Communicator, R> body) {
        return TcpRanks.run(n, CommSettings.of(20_000), body::apply);
    }

    @Test
    void allReduceAddsInRankOrderOnEveryRank() throws Exception {
        int n = 4;
        // values whose float sum depends on the order: every rank must get the rank-order sum
        float[][] inputs = {{1e8f, 1f, 0.5f}, {1f, 2f, 0.25f}, {-1e8f, 3f, 0.125f}, {1f, 4f, 0.0625f}};
        float[] expected = new float[3];
        for (float[] in : inputs) {
            for (int i = 0; i < 3; i++) {
                expected[i] += in[i];
            }
        }
        List<float[]> results = onRanks(n, c -> {
            float[] buffer = inputs[c.rank()].clone();
            c.allReduceSum(buffer);
            return buffer;
        });
        for (float[] r : results) {
            assertArrayEquals(expected, r);
        }
    }

    @Test
    void broadcastAndPointToPoint() throws Exception {
        List<float[]> results = onRanks(3, c -> {
            float[] buffer = c.rank() == 2 ? new float[]{3f, 1f, 4f} : new float[3];
            c.broadcast(buffer, 2);
            // a ring of sends: rank r sends to r+1 and receives from r-1
            int next = (c.rank() + 1) % 3;
            int previous = (c.rank() + 2) % 3;
            c.sendFloats(next, new float[]{c.rank() * 10f}, 0, 1);
            float[] got = new float[1];
            c.recvFloats(previous, got, 0, 1);
            return new float[]{buffer[0], buffer[1], buffer[2], got[0]};
        });
        for (int r = 0; r < 3; r++) {
            assertArrayEquals(new float[]{3f, 1f, 4f, ((r + 2) % 3) * 10f}, results.get(r));
        }
    }

    @Test
    void largeSimultaneousExchangeDoesNotDeadlock() throws Exception {
        int length = 4 << 20; // 16 MiB each way, far beyond the socket buffers
        List<Float> sums = onRanks(2, c -> {
            float[] mine = new float[length];
            java.util.Arrays.fill(mine, c.rank() + 1f);
            int peer = 1 - c.rank();
            c.sendFloats(peer, mine, 0, length);
            float[] theirs = new float[length];
            c.recvFloats(peer, theirs, 0, length);
            float sum = 0;
            for (int i = 0; i < length; i += 1 << 16) {
                sum += theirs[i];
            }
            return sum;
        });
        assertEquals(64 * 2f, sums.get(0));
        assertEquals(64 * 1f, sums.get(1));
    }

    @Test
    void subgroupsOfAGridReduceIndependently() throws Exception {
        // 4 ranks as dp=2 x tp=2: rank = dp * 2 + tp. TP groups {0,1},{2,3}; DP groups {0,2},{1,3}.
        List<float[]> results = onRanks(4, c -> {
            int dp = c.rank() / 2;
            int tp = c.rank() % 2;
            Communicator tpGroup = c.subgroup(dp * 2, dp * 2 + 1);
            Communicator dpGroup = c.subgroup(tp, 2 + tp);
            float[] a = {c.rank()};
            tpGroup.allReduceSum(a);
            float[] b = {c.rank()};
            dpGroup.allReduceSum(b);
            return new float[]{a[0], b[0], tpGroup.rank(), dpGroup.rank()};
        });
        assertArrayEquals(new float[]{1, 2, 0, 0}, results.get(0));
        assertArrayEquals(new float[]{1, 4, 1, 0}, results.get(1));
        assertArrayEquals(new float[]{5, 2, 0, 1}, results.get(2));
        assertArrayEquals(new float[]{5, 4, 1, 1}, results.get(3));
    }

    @Test
    void aPeerThatLeavesIsReportedNotWaitedFor() throws Exception {
        List<String> results = onRanks(2, c -> {
            if (c.rank() == 1) {
                c.close();
                return "closed";
            }
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> c.recv(1));
            return e.getMessage();
        });
        assertTrue(results.get(0).contains("rank 1 closed the connection"), results.get(0));
    }
}
