package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A cluster that asks Spark to encrypt its traffic gets a clear refusal at start, not tensors sent
 * in the clear between ranks: the rank transport is authenticated but not encrypted.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RankTransportEncryptionTest {
    @Test
    void networkCryptoIsRefusedAtStart() {
        SparkConf conf = new SparkConf()
                .setMaster("local[1]")
                .setAppName("RankTransportEncryptionTest")
                .set("spark.authenticate", "true")
                .set("spark.network.crypto.enabled", "true")
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1");
        SparkContext sc = new SparkContext(conf);
        try {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> new BarrierCallRunner(sc, false, false, 10_000));
            assertTrue(e.getMessage().contains("spark.network.crypto.enabled is on"), e.getMessage());
            assertTrue(e.getMessage().contains("encryption of the rank transport is not supported yet"), e.getMessage());
        } finally {
            sc.stop();
        }
    }
}
