package dev.jtune.cuda;

import java.util.List;

/**
 * A CUDA library could not be loaded from any of the places {@link NativeLibraries} looks. The message lists
 * every attempt, in order, with the reason it failed, and says how to fix it.
 */
public final class CudaLibraryNotFoundException extends RuntimeException {
    private final CudaLibrary library;
    private final List<String> attempts;

    public CudaLibraryNotFoundException(CudaLibrary library, List<String> attempts) {
        super(message(library, attempts));
        this.library = library;
        this.attempts = List.copyOf(attempts);
    }

    public CudaLibrary library() {
        return library;
    }

    /** One line per place tried, in the order tried, each with why it failed. */
    public List<String> attempts() {
        return attempts;
    }

    private static String message(CudaLibrary library, List<String> attempts) {
        StringBuilder sb = new StringBuilder()
                .append("cannot load ").append(library.soname()).append(" (").append(library.description())
                .append("). Tried, in order:");
        for (int i = 0; i < attempts.size(); i++) {
            sb.append("\n  ").append(i + 1).append(". ").append(attempts.get(i));
        }
        return sb.append("\nTo fix: ").append(library.installHint())
                .append("; or set -D").append(library.propertyName()).append("=/path/to/").append(library.soname())
                .append(" (or the environment variable ").append(library.environmentVariable())
                .append(") to the library file.")
                .toString();
    }
}
