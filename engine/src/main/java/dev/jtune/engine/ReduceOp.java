package dev.jtune.engine;

/** Reductions along one axis. */
public enum ReduceOp { SUM, MEAN, MAX }
