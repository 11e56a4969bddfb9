package dev.jtune.engine.cuda;

import java.util.List;

/**
 * The parameters of one kernel as its launch class declares them, once: the module load compares them with what the
 * compiled kernel takes, and every launch with the arguments it passes. Either mismatch names the kernel, the
 * parameter's index, and what was expected and found.
 */
record KernelSignature(String name, List<KernelParam> params) {

    KernelSignature {
        params = List.copyOf(params);
    }

    /** Throws {@link IllegalStateException} unless {@code passed} are exactly this signature's parameters. */
    void checkArguments(List<KernelParam> passed) {
        if (passed.size() != params.size()) {
            throw new IllegalStateException("launch of kernel " + name + ": " + passed.size() + " arguments passed, its signature "
                    + "declares " + params.size() + " " + params);
        }
        for (int i = 0; i < params.size(); i++) {
            if (passed.get(i) != params.get(i)) {
                throw new IllegalStateException("launch of kernel " + name + ": argument " + i + " is " + passed.get(i)
                        + ", its signature declares " + params.get(i));
            }
        }
    }

    /**
     * What is wrong with the compiled kernel's parameter sizes, as the driver reports them (one more entry than
     * declared means it takes more), or null when they agree.
     */
    String deviceMismatch(List<Long> sizes) {
        if (sizes.size() != params.size()) {
            return "kernel " + name + " takes " + (sizes.size() > params.size() ? "more than " + params.size() : sizes.size())
                    + " parameters, its signature declares " + params.size() + " " + params;
        }
        for (int i = 0; i < params.size(); i++) {
            if (sizes.get(i) != params.get(i).bytes) {
                return "kernel " + name + " parameter " + i + " is " + sizes.get(i) + " bytes, its signature declares " + params.get(i);
            }
        }
        return null;
    }
}
