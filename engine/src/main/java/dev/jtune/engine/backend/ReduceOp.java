package dev.jtune.engine.backend;

/** Reductions along one axis. */
public enum ReduceOp { SUM, MEAN, MAX }
