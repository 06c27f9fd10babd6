package org.sparkrlhf.jobs.testing;

import org.gaul.s3proxy.AuthenticationType;
import org.gaul.s3proxy.S3Proxy;
import org.jclouds.ContextBuilder;
import org.jclouds.blobstore.BlobStore;
import org.jclouds.blobstore.BlobStoreContext;

import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An S3-compatible server in this JVM for tests: S3Proxy over jclouds' in-memory ("transient")
 * blob store, on a free loopback port, with one bucket and a key pair that S3A signs its requests
 * with. {@link #sparkConf()} is what a run sets to reach it through S3A (path-style requests over
 * plain HTTP, as a real endpoint would be reached with its own host and TLS).
 */
public final class S3Server implements AutoCloseable {
    public static final String ACCESS_KEY = "spark-rlhf-test";
    public static final String SECRET_KEY = "spark-rlhf-test-secret";

    private final S3Proxy proxy;
    private final BlobStoreContext context;
    private final String bucket;

    private S3Server(S3Proxy proxy, BlobStoreContext context, String bucket) {
        this.proxy = proxy;
        this.context = context;
        this.bucket = bucket;
    }

    /** Starts a server holding the empty bucket {@code bucket}. */
    public static S3Server start(String bucket) throws Exception {
        BlobStoreContext context = ContextBuilder.newBuilder("transient").credentials(ACCESS_KEY, SECRET_KEY)
                .build(BlobStoreContext.class);
        BlobStore store = context.getBlobStore();
        store.createContainerInLocation(null, bucket);
        S3Proxy proxy = S3Proxy.builder().blobStore(store).endpoint(URI.create("http://127.0.0.1:0"))
                .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, ACCESS_KEY, SECRET_KEY).build();
        proxy.start();
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!proxy.getState().equals("STARTED")) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("S3Proxy did not start: " + proxy.getState());
            }
            Thread.sleep(10);
        }
        return new S3Server(proxy, context, bucket);
    }

    /** {@code s3a://<bucket>/<key>}. */
    public String uri(String key) {
        return "s3a://" + bucket + "/" + key;
    }

    public String endpoint() {
        return "http://127.0.0.1:" + proxy.getPort();
    }

    /** The Spark confs of a run whose paths are on this server (the {@code spark.hadoop.} prefix hands them to Hadoop). */
    public Map<String, String> sparkConf() {
        Map<String, String> conf = new LinkedHashMap<>();
        conf.put("spark.hadoop.fs.s3a.endpoint", endpoint());
        conf.put("spark.hadoop.fs.s3a.endpoint.region", "us-east-1");
        conf.put("spark.hadoop.fs.s3a.path.style.access", "true");
        conf.put("spark.hadoop.fs.s3a.connection.ssl.enabled", "false");
        conf.put("spark.hadoop.fs.s3a.aws.credentials.provider", "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider");
        conf.put("spark.hadoop.fs.s3a.access.key", ACCESS_KEY);
        conf.put("spark.hadoop.fs.s3a.secret.key", SECRET_KEY);
        // no probe of the bucket at start-up, and few retries: a test's server is there or the test fails
        conf.put("spark.hadoop.fs.s3a.bucket.probe", "0");
        conf.put("spark.hadoop.fs.s3a.attempts.maximum", "2");
        conf.put("spark.hadoop.fs.s3a.retry.limit", "2");
        return conf;
    }

    @Override
    public void close() throws Exception {
        proxy.stop();
        context.close();
    }
}
