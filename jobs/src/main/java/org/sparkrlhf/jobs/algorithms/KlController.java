package org.sparkrlhf.jobs.algorithms;

/**
 * The coefficient of PPO's KL penalty. Fixed, or adaptive as in Ziegler et al. 2019 ("Fine-Tuning
 * Language Models from Human Preferences"): after each step with observed KL {@code kl} over
 * {@code samples} sequences, coef *= 1 + clip(kl / target - 1, -0.2, 0.2) * samples / horizon.
 * The coefficient is part of the run state that a checkpoint saves.
 */
public final class KlController {
    private final boolean adaptive;
    private final double target;
    private final int horizon;
    private double coef;

    public KlController(boolean adaptive, double initialCoef, double target, int horizon) {
        if (initialCoef < 0) {
            throw new IllegalArgumentException("KL coefficient must be >= 0, got " + initialCoef);
        }
        if (adaptive && (!(target > 0) || horizon <= 0)) {
            throw new IllegalArgumentException("an adaptive KL controller needs target > 0 and horizon > 0");
        }
        this.adaptive = adaptive;
        this.target = target;
        this.horizon = horizon;
        this.coef = initialCoef;
    }

    public double coef() {
        return coef;
    }

    /** Restores the coefficient from a checkpoint. */
    public void restore(double savedCoef) {
        this.coef = savedCoef;
    }

    public void update(double kl, int samples) {
        if (!adaptive) {
            return;
        }
        double error = Math.max(-0.2, Math.min(0.2, kl / target - 1.0));
        coef *= 1.0 + error * samples / horizon;
    }
}
