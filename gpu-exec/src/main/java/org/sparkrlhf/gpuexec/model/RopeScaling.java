package org.sparkrlhf.gpuexec.model;

/**
 * Rotary embedding frequencies: {@code default}, {@code linear} (frequencies divided by factor)
 * or {@code llama3} (Llama 3.1's piecewise scaling of long wavelengths), as Hugging Face computes
 * the inverse frequencies in fp32.
 */
public record RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor,
                          int originalMaxPositions) {
    public static final RopeScaling DEFAULT = new RopeScaling("default", 1, 0, 0, 0);

    /** inv_freq[i] = 1 / theta^(2i / D) for i &lt; D/2, then scaled. */
    public float[] inverseFrequencies(double theta, int headDim) {
        int half = headDim / 2;
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / (float) headDim;
            inv[i] = 1.0f / (float) Math.pow(theta, exponent);
        }
        switch (type) {
            case "default" -> {
            }
            case "linear" -> {
                for (int i = 0; i < half; i++) inv[i] = (float) (inv[i] / factor);
            }
            case "llama3" -> {
                double lowWavelen = originalMaxPositions / lowFreqFactor;
                double highWavelen = originalMaxPositions / highFreqFactor;
                for (int i = 0; i < half; i++) {
                    double wavelen = 2 * Math.PI / inv[i];
                    float scaled = wavelen > lowWavelen ? (float) (inv[i] / factor) : inv[i];
                    if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
                        double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                        scaled = (float) ((1 - smooth) * scaled / factor + smooth * scaled);
                    }
                    inv[i] = scaled;
                }
            }
            default -> throw new IllegalArgumentException("unsupported rope type '" + type + "'");
        }
        return inv;
    }
}
