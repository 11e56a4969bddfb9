package dev.jtune.cuda;

import dev.jtune.JtuneException;

import java.util.List;

/**
 * A CUDA library could not be loaded from any of the places {@link NativeLibraries} looks. The message lists
 * every attempt, in order, with the reason it failed, and says how to fix it.
 */
public final class CudaLibraryNotFoundException extends JtuneException {
    private final CudaLibrary library;
    private final List<String> attempts;

    public CudaLibraryNotFoundException(CudaLibrary library, List<String> attempts) {
        super(message(library, attempts), null, fix(library));
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
        return sb.append("\nTo fix: ").append(fix(library)).append('.').toString();
    }

    /** What the message ends with, and the {@link #hint()}: install it, or name the file. */
    private static String fix(CudaLibrary library) {
        return library.installHint() + "; or set -D" + library.propertyName() + "=/path/to/" + library.soname()
                + " (or the environment variable " + library.environmentVariable() + ") to the library file";
    }
}
