package dev.jtune.engine;

/** What a reduction leaves of the axis it reduces: a size-1 axis ({@link #KEEP}, for broadcasting back) or none. */
public enum ReducedAxis {
    KEEP, DROP
}
