package dev.jtune.train.loop;

/**
 * transformers' learning-rate schedules (get_scheduler with a LambdaLR): the factor at optimizer step s
 * (0-based, the step about to be taken) times the base rate. Linear warmup from 0 over {@code warmupSteps}, then
 * linear decay to 0 at {@code totalSteps}, half a cosine to 0, or constant.
 */
public record LrSchedule(Type type, double baseLr, long warmupSteps, long totalSteps) {
    public enum Type { LINEAR, COSINE, CONSTANT, CONSTANT_WITH_WARMUP }

    public double lr(long step) {
        if (type == Type.CONSTANT) {
            return baseLr;
        }
        if (step < warmupSteps) {
            return baseLr * step / Math.max(1.0, warmupSteps);
        }
        double progress = (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
        return switch (type) {
            case LINEAR -> baseLr * Math.max(0.0, (double) (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
            case COSINE -> baseLr * Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * progress)));
            case CONSTANT_WITH_WARMUP, CONSTANT -> baseLr;
        };
    }
}
