package dev.jtune.engine;

/**
 * Where a tensor's storage lives. {@code cpu} is the plain-Java reference backend, {@code cuda:N} the N-th NVIDIA
 * GPU, {@code meta} a backend that only tracks shapes and allocation sizes (for memory planning).
 */
public record Device(Kind kind, int index) {

    public enum Kind { CPU, CUDA, META }

    public static final Device CPU = new Device(Kind.CPU, 0);
    public static final Device META = new Device(Kind.META, 0);

    public Device {
        if (kind == null) {
            throw new IllegalArgumentException("device kind is null");
        }
        if (index < 0 || (kind != Kind.CUDA && index != 0)) {
            throw new IllegalArgumentException("invalid device index " + index + " for " + kind);
        }
    }

    public static Device cuda(int index) {
        return new Device(Kind.CUDA, index);
    }

    /** Parses "cpu", "meta", "cuda" (= cuda:0) or "cuda:N". */
    public static Device parse(String text) {
        String t = text.trim().toLowerCase(java.util.Locale.ROOT);
        return switch (t) {
            case "cpu" -> CPU;
            case "meta" -> META;
            case "cuda", "gpu" -> cuda(0);
            default -> {
                if (t.startsWith("cuda:")) {
                    try {
                        yield cuda(Integer.parseInt(t.substring(5)));
                    } catch (NumberFormatException e) {
                        // fall through to the error below
                    }
                }
                throw new IllegalArgumentException("unknown device '" + text + "': expected cpu, meta, cuda or cuda:N");
            }
        };
    }

    @Override
    public String toString() {
        return kind == Kind.CUDA ? "cuda:" + index : kind.name().toLowerCase(java.util.Locale.ROOT);
    }
}
