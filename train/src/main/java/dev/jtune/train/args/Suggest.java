package dev.jtune.train.args;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Locale;

/** "Did you mean" by edit distance. */
final class Suggest {
    private Suggest() {
    }

    /**
     * The candidates closest to {@code given} (at most three, best first), or none if none is close: those within
     * one edit of the smallest Levenshtein distance, if that is within about a third of the length; failing that, the
     * closest candidate that contains what was given ("epochs" -> "num_train_epochs").
     */
    static List<String> closest(String given, Collection<String> candidates) {
        String g = given.toLowerCase(Locale.ROOT);
        int best = Integer.MAX_VALUE;
        String containing = null;
        int containingDistance = Integer.MAX_VALUE;
        Map<String, Integer> distances = new LinkedHashMap<>();
        for (String c : candidates) {
            int d = levenshtein(g, c);
            distances.put(c, d);
            best = Math.min(best, d);
            if (g.length() >= 3 && c.contains(g) && d < containingDistance) {
                containing = c;
                containingDistance = d;
            }
        }
        if (best <= Math.max(2, g.length() / 3)) {
            int limit = best;
            return distances.entrySet().stream().filter(e -> e.getValue() <= limit + 1)
                    .sorted(Map.Entry.comparingByValue()).limit(3).map(Map.Entry::getKey).toList();
        }
        return containing == null ? List.of() : List.of(containing);
    }

    /** " (did you mean PREFIXx?)", " (did you mean PREFIXx or PREFIXy?)" or "". */
    static String didYouMean(String given, Collection<String> candidates, String prefix) {
        List<String> c = closest(given, candidates);
        if (c.isEmpty()) {
            return "";
        }
        return " (did you mean " + String.join(" or ", c.stream().map(s -> prefix + s).toList()) + "?)";
    }

    static int levenshtein(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
