package org.sparkrlhf.jobs.train;

import org.sparkrlhf.jobs.algorithms.SampledPolicySpec;
import org.sparkrlhf.jobs.algorithms.PpoSpec;
import org.sparkrlhf.jobs.algorithms.PreferenceSpec;
import org.sparkrlhf.jobs.algorithms.RwSpec;
import org.sparkrlhf.jobs.algorithms.SftSpec;
import org.sparkrlhf.jobs.config.RunConfig;

/** The spec of a run's algorithm (a new one per run: a spec may keep state across iterations). */
public final class AlgorithmSpecs {
    private AlgorithmSpecs() {
    }

    public static AlgorithmSpec of(RunConfig config) {
        return switch (config.algorithm()) {
            case SFT -> new SftSpec();
            case GRPO, RLOO, REMAX -> new SampledPolicySpec();
            case PPO -> new PpoSpec();
            case RW -> new RwSpec();
            case DPO, IPO, GR_DPO, GR_IPO -> new PreferenceSpec();
        };
    }
}
