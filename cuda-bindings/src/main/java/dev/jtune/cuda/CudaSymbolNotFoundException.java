package dev.jtune.cuda;

import dev.jtune.JtuneException;

/**
 * A CUDA library was loaded but does not export a function these bindings call: usually a library older
 * than the CUDA 13 API they were written for.
 */
public final class CudaSymbolNotFoundException extends JtuneException {
    private final String symbol;
    private final CudaLibrary library;

    public CudaSymbolNotFoundException(String symbol, CudaLibrary library, String origin) {
        super("symbol " + symbol + " is not exported by " + library.soname() + " (" + library.description()
                + "), loaded " + origin + "; it is probably older than CUDA 13: " + library.installHint(),
                null, library.installHint());
        this.symbol = symbol;
        this.library = library;
    }

    public String symbol() {
        return symbol;
    }

    public CudaLibrary library() {
        return library;
    }
}
