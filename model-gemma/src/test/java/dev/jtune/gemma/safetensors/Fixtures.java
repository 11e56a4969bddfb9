package dev.jtune.gemma.safetensors;

import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;

/** Test resources (copied from the shared fixtures into src/test/resources). */
final class Fixtures {
    private Fixtures() {
    }

    static Path resource(String name) {
        URL url = Fixtures.class.getClassLoader().getResource(name);
        if (url == null) {
            throw new IllegalStateException("test resource " + name + " is missing");
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static Path tinyModel() {
        return resource("gemma3-tiny/model.safetensors");
    }

    static Path tinyGolden() {
        return resource("gemma3-tiny/golden.safetensors");
    }
}
