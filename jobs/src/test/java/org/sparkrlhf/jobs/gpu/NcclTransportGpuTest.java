package org.sparkrlhf.jobs.gpu;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.cuda.NcclCommunicator;
import org.sparkrlhf.jobs.executor.CommSettings;
import org.sparkrlhf.jobs.executor.Communicator;
import org.sparkrlhf.jobs.executor.EngineBackends;
import org.sparkrlhf.jobs.executor.EngineOptions;
import org.sparkrlhf.jobs.executor.NcclTransport;
import org.sparkrlhf.jobs.executor.Rendezvous;
import org.sparkrlhf.jobs.executor.RunSecret;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The NCCL transport of a one-rank call on the GPU machine: the unique id goes through the
 * rendezvous (as through {@code BarrierTaskContext.allGather}), the communicator is made from it,
 * and the collectives run through NCCL, staged through device buffers. Skipped without a CUDA driver.
 *
 * <p>Only one rank: NCCL refuses two ranks of one communicator on the same GPU ("duplicate GPU"),
 * and the GPU machine has one, so the many-rank paths (tensor- and data-parallel all-reduce over
 * several GPUs, the reallocation's grouped sends and receives) cannot run here. A one-rank
 * all-reduce is the identity, so its test is that the values come back bit for bit through
 * upload, ncclAllReduce, the deadline wait and download. The tensor collectives run in place on the
 * backend's tensors (the all-gather out of place) in chunks of 3 floats (6 bf16 values); that they move their own dtype and range
 * is checked out of place by gpu-exec's {@code NcclTensorGpuTest}, which one rank can tell apart.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class NcclTransportGpuTest {
    @BeforeAll
    static void gpu() {
        Assumptions.assumeTrue(CudaBackend.isAvailable(), () -> "skipped: " + CudaBackend.unavailableReason());
    }

    @Test
    void oneRankRoundTripThroughTheUniqueIdExchange() {
        CudaBackend backend = (CudaBackend) EngineBackends.forRank("test", "0", EngineOptions.DEFAULT);
        assertSame(backend, EngineBackends.forRank("test", "0", EngineOptions.DEFAULT), "one backend per GPU");
        assertTrue(NcclCommunicator.version() > 0);
        List<String> gathered = new ArrayList<>();
        RunSecret secret = RunSecret.generate();
        Rendezvous recording = new Rendezvous() {
            @Override
            public String[] allGather(String mine) {
                gathered.add(mine);
                return new String[]{mine};
            }

            @Override
            public RunSecret secret() {
                return secret;
            }
        };
        try (NcclTransport comm = NcclTransport.connect(0, 1, "127.0.0.1", recording, 60_000, backend)) {
            // only the TCP mesh's address: the NCCL unique id goes over the authenticated mesh, never
            // through the driver's rendezvous
            assertEquals(1, gathered.size(), "one rendezvous round");
            assertTrue(gathered.get(0).startsWith("127.0.0.1:"));
            assertEquals(0, comm.rank());
            assertEquals(1, comm.size());

            SplittableRandom random = new SplittableRandom(3);
            float[] values = new float[100_003];
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) random.nextGaussian();
            }
            float[] reduced = values.clone();
            comm.allReduceSum(reduced);
            assertArrayEquals(values, reduced);
            float[] broadcast = values.clone();
            comm.broadcast(broadcast, 0);
            assertArrayEquals(values, broadcast);
            // all-gather of parts is built on the all-reduce
            float[] full = values.clone();
            comm.allGatherParts(full, new int[]{0, full.length});
            assertArrayEquals(values, full);
            // a reallocation step with nothing to move, and the whole group as a subgroup
            comm.exchange(Map.of(), Map.of());
            Communicator whole = comm.subgroup(0);
            assertSame(comm, whole);
        }
    }

    @Test
    void tensorCollectivesRunInPlaceInChunksOfTheSetting() {
        CudaBackend backend = (CudaBackend) EngineBackends.forRank("test", "0", EngineOptions.DEFAULT);
        RunSecret secret = RunSecret.generate();
        Rendezvous alone = new Rendezvous() {
            @Override
            public String[] allGather(String mine) {
                return new String[]{mine};
            }

            @Override
            public RunSecret secret() {
                return secret;
            }
        };
        CommSettings settings = CommSettings.of(60_000).withChunkBytes(12);
        try (NcclTransport comm = NcclTransport.connect(0, 1, "127.0.0.1", alone, settings, backend)) {
            assertEquals(12, comm.chunkBytes());
            SplittableRandom random = new SplittableRandom(5);
            float[] values = new float[1001];
            for (int i = 0; i < values.length; i++) {
                values[i] = random.nextInt(-64, 64) / 4f; // exact in bf16
            }
            for (DType dtype : new DType[]{DType.BF16, DType.F32}) {
                Tensor t = backend.allocate(dtype, 7, 143);
                backend.upload(t, values);
                comm.allReduceSum(backend, List.of(t));
                comm.broadcast(backend, t, 0);
                assertArrayEquals(values, backend.download(t), dtype + ": one rank, bit for bit");
                // the all-gather's out-of-place broadcasts copy the one part, chunk by chunk, into a
                // tensor of another shape (the logits' [tp * N, V / tp] rows)
                Tensor all = backend.allocate(dtype, 11, 91);
                comm.allGather(backend, t, all);
                assertArrayEquals(values, backend.download(all), dtype + ": all-gather over one rank, bit for bit");
                backend.free(all);
                backend.free(t);
            }
            // host arrays are staged through a device buffer of one chunk
            float[] reduced = values.clone();
            comm.allReduceSum(reduced);
            assertArrayEquals(values, reduced);
            float[] broadcast = values.clone();
            comm.broadcast(broadcast, 0);
            assertArrayEquals(values, broadcast);
        }
    }
}
