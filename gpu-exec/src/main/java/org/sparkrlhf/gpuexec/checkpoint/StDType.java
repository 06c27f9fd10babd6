package org.sparkrlhf.gpuexec.checkpoint;

/** The safetensors element types this engine reads (weights as floats, indices as integers). */
public enum StDType {
    F32(4), BF16(2), F16(2), I64(8), I32(4);

    private final int bytes;

    StDType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    public boolean isFloat() {
        return this == F32 || this == BF16 || this == F16;
    }

    /** The torch dtype name written to config.json for a checkpoint of this type. */
    public String torchName() {
        return switch (this) {
            case F32 -> "float32";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            case I64 -> "int64";
            case I32 -> "int32";
        };
    }

    /** Parses "float32", "bf16", "F16", ... */
    public static StDType parse(String s) {
        return switch (s.toLowerCase()) {
            case "f32", "fp32", "float32", "float" -> F32;
            case "bf16", "bfloat16" -> BF16;
            case "f16", "fp16", "float16", "half" -> F16;
            default -> throw new IllegalArgumentException("unsupported weight dtype '" + s + "' (float32, bfloat16, float16)");
        };
    }
}
