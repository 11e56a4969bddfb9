package dev.jtune.engine.quant;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link DynamicMap#code(float)} a vector at a time: a gather from the map's bucket table, and the bucket's choice
 * between its two codes as integer arithmetic (no masks or blends: C2 left those as calls into the Vector API's Java
 * fallbacks in the host optimizer). Loaded only when {@code jdk.incubator.vector} is present.
 */
final class VectorCodes {
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Float> F = I.withLanes(float.class);

    private VectorCodes() {
    }

    /** Codes of x[0, n) into out[0, n) by {@code table} (a {@link DynamicMap} bucket table); returns where whole vectors end. */
    static int codes(int[] table, float[] x, int[] out, int n) {
        int end = n / I.length() * I.length();
        for (int j = 0; j < end; j += I.length()) {
            IntVector bits = FloatVector.fromArray(F, x, j).reinterpretAsInts();
            bits.lanewise(VectorOperators.LSHR, DynamicMap.BUCKET_SHIFT).intoArray(out, j); // the gather's indices
            IntVector e = IntVector.fromArray(I, table, 0, out, j);
            IntVector low = e.and(0xFF);
            IntVector high = e.lanewise(VectorOperators.LSHR, 8).and(0xFF);
            IntVector change = e.lanewise(VectorOperators.LSHR, 16);
            IntVector below = bits.and(0xFFFF).sub(change).lanewise(VectorOperators.ASHR, 31); // all ones before the change
            high.lanewise(VectorOperators.XOR, high.lanewise(VectorOperators.XOR, low).and(below)).intoArray(out, j);
        }
        return end;
    }
}
