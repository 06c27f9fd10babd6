package org.sparkrlhf.gpuexec.cuda;

/** bfloat16 as the GPU stores it: the high 16 bits of an IEEE float, rounded to nearest even. */
public final class Bf16 {
    private Bf16() {}

    public static short fromFloat(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (short) 0x7fc0; // NaN stays a quiet NaN
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    public static float toFloat(short b) {
        return Float.intBitsToFloat((b & 0xffff) << 16);
    }

    /** The float nearest to {@code f} that bf16 can hold. */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }
}
