package dev.jtune.train.loop;

/** jtune's version, from the jar's manifest (Implementation-Version); "development" when run from classes. */
public final class Version {
    private Version() {
    }

    public static String get() {
        String v = Version.class.getPackage().getImplementationVersion();
        return v == null ? "development build" : v;
    }
}
