package org.sparkrlhf.gpuexec.backend.cpu;

/** bf16 rounding of floats (round to nearest even, NaN kept NaN), as torch's float-to-bfloat16. */
final class Bf16 {
    private Bf16() {
    }

    static float round(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return Float.intBitsToFloat((bits | 0x00400000) & 0xffff0000);
        int rounded = bits + 0x7fff + ((bits >>> 16) & 1);
        return Float.intBitsToFloat(rounded & 0xffff0000);
    }

    static void roundInPlace(float[] a) {
        roundInPlace(a, 0, a.length);
    }

    static void roundInPlace(float[] a, int at, int n) {
        for (int i = at; i < at + n; i++) a[i] = round(a[i]);
    }
}
