package udf.streaming;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What the per-user operator breaks its totals down by besides event types: the segments and
 * the ratio pairs, each with the experiments that use it ({@code streaming.plan.StreamPlan}).
 *
 * <p>Its text form, made by {@code aggregation.operator_plan}: one line per item, fields
 * separated by tabs; {@code F <fields>} the number of segment fields an event carries, {@code
 * S <name> <field> <experiments...>} a segment and the index of its field, {@code P <id>
 * <numerator type> <statistic> <denominator type> <statistic> <experiments...>} a ratio pair
 * whose statistics are {@code count} or {@code sum}; {@code X <experiments...>} the
 * experiments that leave out users exposed to two of their groups ({@code
 * analysis.multiple_groups: exclude}); {@code C <experiment> <ms>} an experiment with CUPED
 * and its covariate's window.
 */
final class OperatorPlan {

    record Segment(String name, int field, Set<String> experiments) {}

    record Pair(String id, String numerator, boolean numeratorSum, String denominator,
            boolean denominatorSum, Set<String> experiments) {

        boolean touches(java.util.Collection<String> types) {
            return types.contains(numerator) || types.contains(denominator);
        }
    }

    final int fields;
    final List<Segment> segments = new ArrayList<>();
    final List<Pair> pairs = new ArrayList<>();
    private final Set<String> excluding = new java.util.HashSet<>();
    private final Map<String, Long> preWindows = new HashMap<>();
    private final Map<String, List<Segment>> segmentsOf = new HashMap<>();
    private final Map<String, List<Pair>> pairsOf = new HashMap<>();

    private OperatorPlan(int fields) {
        this.fields = fields;
    }

    static OperatorPlan parse(String text) {
        int fields = 0;
        List<String[]> items = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (line.isEmpty()) {
                continue;
            }
            String[] f = line.split("\t", -1);
            if (f[0].equals("F")) {
                fields = Integer.parseInt(f[1]);
            } else {
                items.add(f);
            }
        }
        OperatorPlan plan = new OperatorPlan(fields);
        for (String[] f : items) {
            switch (f[0]) {
                case "S" -> plan.segments.add(
                        new Segment(f[1], Integer.parseInt(f[2]), rest(f, 3)));
                case "P" -> plan.pairs.add(new Pair(f[1], f[2], f[3].equals("sum"), f[4],
                        f[5].equals("sum"), rest(f, 6)));
                case "X" -> plan.excluding.addAll(rest(f, 1));
                case "C" -> plan.preWindows.put(f[1], Long.parseLong(f[2]));
                default -> throw new IllegalArgumentException("unknown plan line: " + String.join(" ", f));
            }
        }
        return plan;
    }

    /** Whether {@code experiment} leaves out users exposed to two of its groups. */
    boolean excludes(String experiment) {
        return excluding.contains(experiment);
    }

    /** The window of {@code experiment}'s CUPED covariate in milliseconds; 0 without CUPED. */
    long preWindow(String experiment) {
        return preWindows.getOrDefault(experiment, 0L);
    }

    List<Segment> segmentsOf(String experiment) {
        return segmentsOf.computeIfAbsent(experiment,
                e -> segments.stream().filter(s -> s.experiments().contains(e)).toList());
    }

    List<Pair> pairsOf(String experiment) {
        return pairsOf.computeIfAbsent(experiment,
                e -> pairs.stream().filter(p -> p.experiments().contains(e)).toList());
    }

    private static Set<String> rest(String[] f, int from) {
        return Set.of(java.util.Arrays.copyOfRange(f, from, f.length));
    }
}
