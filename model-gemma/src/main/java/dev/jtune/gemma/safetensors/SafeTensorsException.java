package dev.jtune.gemma.safetensors;

import dev.jtune.JtuneException;

import java.nio.file.Path;

/**
 * Anything wrong with a safetensors file, checkpoint index or write: a malformed header, a tensor whose offsets,
 * dtype or shape do not add up, a missing tensor, a failed write. The message always names the file and, where one
 * is involved, the tensor, then says what was expected and what was found.
 */
public class SafeTensorsException extends JtuneException {
    private final Path file;
    private final String tensor;
    private final String problem;

    public SafeTensorsException(Path file, String tensor, String problem) {
        this(file, tensor, problem, null);
    }

    public SafeTensorsException(Path file, String tensor, String problem, Throwable cause) {
        super(format(file, tensor, problem), cause);
        this.file = file;
        this.tensor = tensor;
        this.problem = problem;
    }

    /** What is wrong, without the file and tensor prefix. */
    public String problem() {
        return problem;
    }

    /** The file the problem is in (a .safetensors file or an index), or null when there is none. */
    public Path file() {
        return file;
    }

    /** The tensor the problem is about, or null when it concerns the whole file. */
    public String tensor() {
        return tensor;
    }

    private static String format(Path file, String tensor, String problem) {
        StringBuilder sb = new StringBuilder();
        sb.append(file == null ? "<no file>" : file.toString());
        if (tensor != null) {
            sb.append(": tensor '").append(tensor).append('\'');
        }
        return sb.append(": ").append(problem).toString();
    }
}
