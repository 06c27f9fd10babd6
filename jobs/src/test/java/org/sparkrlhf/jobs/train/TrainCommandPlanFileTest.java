package org.sparkrlhf.jobs.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.plan.CallPlacements;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code spark-rlhf train} over a {@code plan.mode: file} run whose plan file is bad in a way that no
 * cluster can cure: exit 2 before Spark starts (no context, so no stage, and the devices' discovery
 * never prints), the message naming the file, the call and the field, nothing written. A file that
 * only the devices can refuse (its meshes past a small cluster) passes this check.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TrainCommandPlanFileTest {
    /** GRPO with a reward function: actor_gen, ref_inf, actor_train. */
    private static final String GEN = "{\"name\": \"actor_gen\", \"role\": \"actor\", \"gpus\": [0, 1], \"dp\": 2, \"tp\": 1, \"pp\": 1}";
    private static final String REF = "{\"name\": \"ref_inf\", \"role\": \"ref\", \"gpus\": [0], \"dp\": 1, \"tp\": 1, \"pp\": 1}";
    private static final String TRAIN = "{\"name\": \"actor_train\", \"role\": \"actor\", \"gpus\": [0, 1], \"dp\": 2, \"tp\": 1, \"pp\": 1, \"micro_batches\": 2}";

    @TempDir
    Path dir;

    private Path config(String... calls) throws IOException {
        Path plan = dir.resolve("plan.json");
        Files.writeString(plan, "{\"algorithm\": \"grpo\", \"calls\": [" + String.join(", ", calls) + "]}");
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, "{\"id\": \"q1\", \"prompt\": \"1+1=\", \"answer\": \"2\", \"reference\": \"2\"}\n");
        Path yaml = dir.resolve("grpo.yaml");
        Files.writeString(yaml, """
                name: bad-plan
                algorithm: grpo
                iterations: 2
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data: {path: %s, batch_size: 2}
                plan: {mode: file, file: %s}
                spark: {master: "local[2]"}
                """.formatted(dir.resolve("run"), SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, data, plan));
        return yaml;
    }

    private String refused(Path yaml) {
        return TrainCommandModelFoldersTest.refusedBeforeSpark(yaml, dir.resolve("run"));
    }

    private String plan() {
        return dir.resolve("plan.json").toString();
    }

    @Test
    void aCallWhoseLayoutDoesNotCoverItsDevicesIsRefused() throws IOException {
        String bad = "{\"name\": \"actor_train\", \"role\": \"actor\", \"gpus\": [0, 1], \"dp\": 1, \"tp\": 1, \"pp\": 1}";
        assertEquals("spark-rlhf train: " + plan() + ": call 'actor_train': dp*tp*pp = 1 but 'gpus' lists 2 devices\n",
                refused(config(GEN, REF, bad)));
    }

    @Test
    void aCallTheAlgorithmDoesNotHaveIsRefused() throws IOException {
        String critic = "{\"name\": \"critic_train\", \"role\": \"critic\", \"gpus\": [0], \"dp\": 1, \"tp\": 1, \"pp\": 1}";
        assertEquals("spark-rlhf train: " + plan() + ": calls[3]: field 'name': algorithm grpo has no call named "
                + "'critic_train'\n", refused(config(GEN, REF, TRAIN, critic)));
    }

    @Test
    void aMissingCallZeroMicroBatchesAWrongRoleAndZero3AreRefused() throws IOException {
        assertEquals("spark-rlhf train: " + plan() + ": call 'ref_inf' of grpo is not placed\n",
                refused(config(GEN, TRAIN)));
        assertEquals("spark-rlhf train: " + plan() + ": call 'actor_train': field 'micro_batches' must be a positive "
                + "integer, got 0\n", refused(config(GEN, REF, TRAIN.replace("\"micro_batches\": 2", "\"micro_batches\": 0"))));
        assertEquals("spark-rlhf train: " + plan() + ": call 'ref_inf': field 'role' is 'actor', but grpo runs ref_inf "
                + "on model 'ref'\n", refused(config(GEN, REF.replace("\"ref\"", "\"actor\""), TRAIN)));
        assertEquals("spark-rlhf train: " + plan() + ": call 'actor_gen': field 'zero3': ZeRO-3 sharding is not run by "
                + "this runtime (it keeps whole data-parallel replicas)\n",
                refused(config(GEN.replace("}", ", \"zero3\": true}"), REF, TRAIN)));
        String notJson = refused(config(GEN + ", {"));
        assertTrue(notJson.startsWith("spark-rlhf train: " + plan() + ": not valid JSON: "), notJson);
    }

    @Test
    void meshesPastTheClusterWaitForTheDevices() throws IOException {
        // 64 devices: wrong for the 2 slots of local[2], but only the discovered devices can say so
        String wide = "{\"name\": \"actor_train\", \"role\": \"actor\", \"gpus\": [" + range(64) + "], \"dp\": 64, "
                + "\"tp\": 1, \"pp\": 1}";
        CallPlacements.checkPlanFile(new RunConfigReader(HadoopFiles.conf()).read(config(GEN, REF, wide).toString()));
    }

    private static String range(int n) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < n; i++) {
            s.append(i == 0 ? "" : ", ").append(i);
        }
        return s.toString();
    }
}
