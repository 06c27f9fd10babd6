package org.sparkrlhf.gpuexec.profile;

/**
 * One measurement of the planner's profile table ({@code model,gpu,op,tp,tokens,context,seconds}; see the
 * planner's {@code ProfileTable} for what each op means).
 */
public record ProfileRow(String model, String gpu, String op, int tp, long tokens, long context, double seconds) {
    public ProfileRow {
        if (model.contains(",") || gpu.contains(",")) {
            throw new IllegalArgumentException("model and gpu names may not hold a comma: " + model + ", " + gpu);
        }
        if (tp < 1 || tokens < 1 || context < 0 || !(seconds > 0) || Double.isInfinite(seconds)) {
            throw new IllegalArgumentException(op + " at " + tokens + " tokens, context " + context
                    + ": tp and tokens must be >= 1, context >= 0, seconds positive and finite, got " + seconds);
        }
    }
}
