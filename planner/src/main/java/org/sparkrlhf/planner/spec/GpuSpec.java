package org.sparkrlhf.planner.spec;

import java.util.List;

/**
 * One accelerator: its memory, its peak dense bf16 rate (fp32 for the CPU preset) and its memory
 * bandwidth. Figures are the vendors' data-sheet peaks; the cost model applies its own efficiencies.
 */
public record GpuSpec(String name, long memoryBytes, double peakFlops, double memoryBandwidth) {
    public static final long GIB = 1L << 30;

    public GpuSpec {
        if (memoryBytes <= 0 || peakFlops <= 0 || memoryBandwidth <= 0) {
            throw new IllegalArgumentException("gpu " + name + ": memory, peak FLOP/s and bandwidth must be positive");
        }
    }

    /** NVIDIA H100 SXM5 80 GB: 989 TFLOP/s dense bf16, 3.35 TB/s HBM3. */
    public static GpuSpec h100() {
        return new GpuSpec("h100", 80 * GIB, 989e12, 3.35e12);
    }

    /** NVIDIA A100 SXM4 80 GB: 312 TFLOP/s dense bf16, 2.039 TB/s HBM2e. */
    public static GpuSpec a100() {
        return new GpuSpec("a100", 80 * GIB, 312e12, 2.039e12);
    }

    /**
     * One task slot of a CPU executor running the pure-Java engine: a few cores' worth of fp32 FMA
     * throughput and a share of DRAM bandwidth; memory is the slot's share of the executor heap.
     */
    public static GpuSpec cpu(long memoryBytes) {
        return new GpuSpec("cpu", memoryBytes, 5e10, 1e10);
    }

    public static final List<String> PRESETS = List.of("h100", "a100", "cpu");

    public static GpuSpec preset(String name) {
        return switch (name) {
            case "h100" -> h100();
            case "a100" -> a100();
            case "cpu" -> cpu(8 * GIB);
            default -> throw new IllegalArgumentException("unknown gpu '" + name + "'; known: " + PRESETS);
        };
    }

    public GpuSpec withMemory(long bytes) {
        return new GpuSpec(name, bytes, peakFlops, memoryBandwidth);
    }
}
