package udf.streaming;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Consumer;

import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;

/**
 * One exposure's part of its group's totals, as the changes the per-user operator emits.
 *
 * <p>A user's values through a day {@code D} (docs/metrics.md §5) are a step function of
 * {@code D}: they change only on the days the user has counted events, the exposure's first
 * day and the days a segment value is found. The group totals through {@code D} are the sums
 * of the users' values, so they are the running sums, over days up to {@code D}, of the
 * users' day-to-day increments. A change of the user's state is emitted as the increments
 * after it minus the increments before it ({@link #add}, called with {@code -1} before the
 * state changes and {@code +1} after): insert-only rows that a plain {@code SUM} adds up,
 * per key and day, and the SQL after the operator turns into running sums.
 *
 * <p>Per day, a user's values are: {@code exposed} 1; per event type with counted events
 * {@code (cnt, users, cnt_sq, vsum, vsq) = (C, 1, C², V, V²)}, with {@code C} the events and
 * {@code V} the sum of their {@code value} through the day; per ratio pair of the experiment
 * with both types' events, {@code vsum = x·y}; and each again under each segment of the
 * experiment, with the user's segment value of that day ({@code ""} before the day of the
 * first counted event that has the segment's field).
 *
 * <p>On a day the user is also in another group of the experiment ({@link OtherGroups}), the
 * exposure counts once more under {@code multi} (the group's users in two groups, whole
 * groups only), and when the experiment excludes such users ({@code analysis.multiple_groups:
 * exclude}) all its other values are 0 that day. Each exposure the group counts also counts
 * under {@code interval}, named by the start of the allocation interval its {@code tu} fell
 * in (the SRM check's expected counts: {@code streaming.health}). In an experiment with
 * CUPED, each type whose covariate {@code p} (count {@code pc}, sum of value {@code pv}) is
 * not 0 counts under {@code pre}, {@code (cnt, cnt_sq, vsum, vsq) = (pc, pc², pv, pv²)}, and
 * with its events through the day under {@code pre_xy}, {@code (cnt, vsum) = (C·pc, V·pv)}:
 * a count metric's {@code pre_sum}, {@code pre_sum_sq} and {@code pre_sum_xy} from the
 * counts, a sum metric's from the sums (docs/metrics.md §8.4).
 */
final class Contributions {

    static final long DAY_MS = 86_400_000L;
    static final long BUCKET_MS = 900_000L; // the series' 15 minutes
    static final String EXPOSED = "exposed", TYPE = "type", PAIR = "pair", MULTI = "multi";
    static final String INTERVAL = "interval", PRE = "pre", PRE_XY = "pre_xy";
    static final String EVENT_TYPE = "event_type", SERIES = "series_";

    /** The first counted event with a segment's field: its order key and the field's value. */
    record SegmentFirst(long ts, String type, String value) {

        boolean after(long otherTs, String otherType) {
            return UserEvents.compare(otherTs, otherType, ts, type) < 0;
        }
    }

    record Slot(String segment, String sv, String kind, String name) {}

    private record Key(Slot slot, long day) {}

    /**
     * Changes of (cnt, users, cnt_sq, vsum, vsq, nonzero). {@code nonzero} counts the users
     * whose {@code vsum} term is not zero: a sum of doubles that were added and taken back
     * keeps a round-off, and a group whose count is 0 has a sum of exactly 0.
     */
    static final class Stat {
        long cnt, users, sq, nonzero;
        double vsum, vsq;

        Stat(long cnt, long users, long sq, double vsum, double vsq) {
            this.cnt = cnt;
            this.users = users;
            this.sq = sq;
            this.vsum = vsum;
            this.vsq = vsq;
            this.nonzero = vsum != 0.0 ? 1 : 0;
        }

        void add(Stat o, int sign) {
            cnt += sign * o.cnt;
            users += sign * o.users;
            sq += sign * o.sq;
            vsum += sign * o.vsum;
            vsq += sign * o.vsq;
            nonzero += sign * o.nonzero;
        }

        /**
         * Add an emitted row's stats, its {@code cnt} at {@code at} and the rest after it, in
         * the order {@link Contributions#emit} writes them (none of them is ever null).
         */
        void addColumns(RowData row, int at) {
            cnt += row.getLong(at);
            users += row.getLong(at + 1);
            sq += row.getLong(at + 2);
            vsum += row.getDouble(at + 3);
            vsq += row.getDouble(at + 4);
            nonzero += row.getLong(at + 5);
        }

        boolean isZero() {
            return cnt == 0 && users == 0 && sq == 0 && nonzero == 0 && vsum == 0.0 && vsq == 0.0;
        }
    }

    private static final Stat ONE = new Stat(1, 0, 0, 0.0, 0.0);

    private final OperatorPlan plan;
    private final Exposure exposure; // its experiment, group and period
    private final Map<Key, Stat> changes = new LinkedHashMap<>();
    private final boolean excludes; // the experiment leaves out users in two groups
    private final boolean covariate; // the experiment has CUPED

    Contributions(OperatorPlan plan, Exposure exposure) {
        this.plan = plan;
        this.exposure = exposure;
        this.excludes = plan.excludes(exposure.experiment());
        this.covariate = plan.preWindow(exposure.experiment()) > 0;
    }

    /**
     * Add {@code sign} times the values of {@code types} (and of the pairs that use one of
     * them; and {@code exposed} when asked) that the exposure has in the state {@code x} (its
     * {@code tu}, interval and segment firsts), as day-to-day increments from the day of
     * {@code tu}. {@code profiles} holds the exposure's profile of each type it has events of
     * (and of the pairs' other types); {@code others} the days the user is in another group.
     */
    void add(Exposure x, Map<String, Profile> profiles, Collection<String> types, boolean exposed,
            OtherGroups others, int sign) {
        long tu = x.tu();
        SegmentFirst[] firsts = x.firsts();
        String experiment = exposure.experiment();
        List<OperatorPlan.Segment> segments = plan.segmentsOf(experiment);
        List<OperatorPlan.Pair> pairs = new ArrayList<>();
        for (OperatorPlan.Pair pair : plan.pairsOf(experiment)) {
            if (pair.touches(types)) {
                pairs.add(pair);
            }
        }
        TreeSet<Long> days = new TreeSet<>(); // where the values may change
        if (exposed) {
            days.add(tu / DAY_MS);
        }
        for (String type : types) {
            addDays(days, profiles.get(type));
        }
        for (OperatorPlan.Pair pair : pairs) {
            addDays(days, profiles.get(pair.numerator()));
            addDays(days, profiles.get(pair.denominator()));
        }
        for (OperatorPlan.Segment segment : segments) {
            SegmentFirst first = firsts[segment.field()];
            if (first != null) {
                days.add(first.ts() / DAY_MS);
            }
        }
        if (covariate) { // the covariate counts from the first day on
            for (String type : types) {
                Profile p = profiles.get(type);
                if (p != null && p.preCount != 0) {
                    days.add(tu / DAY_MS);
                    break;
                }
            }
        }
        if (!days.isEmpty() && (exposed || excludes)) { // the exposure's days: rows have no others
            others.addChanges(days, tu / DAY_MS, (exposure.end() - 1) / DAY_MS);
        }
        String[] values = new String[segments.size()];
        Map<Slot, Stat> before = Map.of();
        for (long day : days) {
            for (int i = 0; i < values.length; i++) {
                SegmentFirst first = firsts[segments.get(i).field()];
                values[i] = first != null && first.ts() / DAY_MS <= day ? first.value() : "";
            }
            Map<Slot, Stat> now = new HashMap<>();
            boolean multi = others.on(day);
            if (exposed && multi) {
                now.put(new Slot("", "", MULTI, ""), ONE);
            }
            if (!(multi && excludes)) { // else left out that day, but for the multi count
                values(now, segments, values, profiles, types, pairs, day);
                if (exposed) { // the group's users per allocation interval: whole groups only
                    now.put(new Slot("", "", INTERVAL, Long.toString(x.interval())), ONE);
                    put(now, segments, values, EXPOSED, "", ONE);
                }
            }
            for (Map.Entry<Slot, Stat> e : now.entrySet()) {
                change(e.getKey(), day, e.getValue(), sign);
                Stat old = before.get(e.getKey());
                if (old != null) {
                    change(e.getKey(), day, old, -sign);
                }
            }
            for (Map.Entry<Slot, Stat> e : before.entrySet()) {
                if (!now.containsKey(e.getKey())) {
                    change(e.getKey(), day, e.getValue(), -sign);
                }
            }
            before = now;
        }
    }

    /** The exposure's counted values through {@code day} into {@code now}, per segment value. */
    private void values(Map<Slot, Stat> now, List<OperatorPlan.Segment> segments, String[] values,
            Map<String, Profile> profiles, Collection<String> types, List<OperatorPlan.Pair> pairs,
            long day) {
        for (String type : types) {
            Profile p = profiles.get(type);
            long c = p == null ? 0 : p.countThrough(day);
            double v = c > 0 ? p.sumThrough(day) : 0.0;
            if (c > 0) {
                put(now, segments, values, TYPE, type, new Stat(c, 1, c * c, v, v * v));
            }
            if (covariate && p != null && p.preCount != 0) {
                long pc = p.preCount;
                double pv = p.preSum;
                put(now, segments, values, PRE, type, new Stat(pc, 0, pc * pc, pv, pv * pv));
                if (c > 0) {
                    put(now, segments, values, PRE_XY, type, new Stat(c * pc, 0, 0, v * pv, 0.0));
                }
            }
        }
        for (OperatorPlan.Pair pair : pairs) {
            Profile x = profiles.get(pair.numerator());
            Profile y = profiles.get(pair.denominator());
            if (x != null && y != null && x.countThrough(day) > 0 && y.countThrough(day) > 0) {
                double xy = value(x, day, pair.numeratorSum()) * value(y, day, pair.denominatorSum());
                put(now, segments, values, PAIR, pair.id(), new Stat(0, 0, 0, xy, 0.0));
            }
        }
    }

    /** A change of the 15-minute series: {@code kind} is exposed, volume or propensity. */
    void series(String kind, String type, long ts, int sign) {
        change(new Slot("", "", SERIES + kind, type), ts / BUCKET_MS, ONE, sign);
    }

    /** Emit the changes that are not zero: the exposure, the day and the slot, then the stats. */
    void emit(Texts texts, Consumer<RowData> out) {
        for (Map.Entry<Key, Stat> e : changes.entrySet()) {
            Stat s = e.getValue();
            if (!s.isZero()) {
                Slot slot = e.getKey().slot();
                out.accept(GenericRowData.of(texts.of(exposure.experiment()),
                        texts.of(exposure.grp()), exposure.start(), exposure.end(),
                        e.getKey().day(), texts.of(slot.segment()), texts.of(slot.sv()),
                        texts.of(slot.kind()), texts.of(slot.name()), s.cnt, s.users, s.sq,
                        s.vsum, s.vsq, s.nonzero));
            }
        }
        changes.clear();
    }

    private void put(Map<Slot, Stat> now, List<OperatorPlan.Segment> segments, String[] values,
            String kind, String name, Stat stat) {
        now.put(new Slot("", "", kind, name), stat);
        for (int i = 0; i < values.length; i++) {
            now.put(new Slot(segments.get(i).name(), values[i], kind, name), stat);
        }
    }

    private void change(Slot slot, long day, Stat stat, int sign) {
        changes.computeIfAbsent(new Key(slot, day), k -> new Stat(0, 0, 0, 0.0, 0.0)).add(stat, sign);
    }

    private static double value(Profile p, long day, boolean sum) {
        return sum ? p.sumThrough(day) : (double) p.countThrough(day);
    }

    private static void addDays(TreeSet<Long> days, Profile p) {
        if (p != null) {
            for (Profile.Day d : p.days) {
                days.add(d.day);
            }
        }
    }
}
