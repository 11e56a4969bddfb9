package dev.jtune.engine;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInfo;

/** Runs each test inside its own scope, so every tensor a test makes is freed when it ends. */
abstract class ScopedTest {
    Scope scope;

    @BeforeEach
    void openScope(TestInfo info) {
        scope = Scope.open(info.getDisplayName());
    }

    @AfterEach
    void closeScope() {
        scope.close();
    }
}
