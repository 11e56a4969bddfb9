package dev.jtune.engine.backend;

/** Random distributions: NORMAL(p0 = mean, p1 = std), UNIFORM(p0 = low, p1 = high, high excluded). */
public enum Distribution { NORMAL, UNIFORM }
