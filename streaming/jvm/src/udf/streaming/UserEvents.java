package udf.streaming;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;

import udf.streaming.Contributions.SegmentFirst;

/**
 * The per-user operator of the aggregation job: one process table function, partitioned by
 * user (docs/streaming.md, "The per-user operator").
 *
 * <p>Its input is a user's valid events (insert-only) and filtered activations (a changelog:
 * a re-ramp that moves a period's end retracts the activations of the old period). It does,
 * per user, exactly what batch does (docs/metrics.md §1-5):
 *
 * <ul>
 *   <li><b>de-duplication</b>: equal {@code (event_type, ts)} are one event, the first to
 *       arrive wins;
 *   <li><b>the spam cap</b>: of the user's events in one clock hour, ordered by {@code (ts,
 *       event_type)}, only the first {@code cap} count; a late event that displaces a counted
 *       one takes it back;
 *   <li><b>first trigger time</b> {@code t_u}: the earliest activation per (experiment, group,
 *       period), whatever order activations arrive in;
 *   <li><b>the activation-event join</b>: every counted event with {@code t_u <= ts < period
 *       end}, whichever side arrives first (the seed's co-process join with an event buffer,
 *       without a time limit);
 *   <li><b>the user's values</b> per exposure and day, overall and per segment value, and
 *       their changes ({@link Contributions}).
 * </ul>
 *
 * <p>Output, insert-only, after the partition key {@code user_id}: {@code (experiment, grp,
 * period_start, period_end, d, segment, sv, kind, name, cnt, users, cnt_sq, vsum, vsq)}, a
 * change to add to a group's totals: {@code kind} {@code exposed}, {@code type} or {@code
 * pair} a change of the user's values from day {@code d} on; {@code series_exposed}, {@code
 * series_volume} or {@code series_propensity} a change of {@code cnt} exposures, counted
 * events or first events of a type in 15-minute bucket {@code d}; {@code event_type} (no
 * exposure) a change of the number of users with counted events of type {@code name}.
 *
 * <p>State, per user: {@code exposures} (each with its {@code t_u} and segment firsts: a
 * small value read on every call, written only when they change), {@code activations} (each
 * exposure's activation times, with their multiplicities), {@code hours} (per clock hour, the
 * counted events' sort keys in order), {@code events} (every counted event by key), {@code
 * types} (counted events per type) and {@code profiles} (per exposure and type, the counted
 * events per day: {@link Profile}). An event in order reads its hour and type and, per
 * exposure it falls in, its type's profile (and a ratio partner's), and writes them: no scan.
 * A displaced first event, or an exposure's change, reads the user's counted events.
 */
@DataTypeHint(
        "ROW<experiment STRING, grp STRING, period_start BIGINT, period_end BIGINT, d BIGINT,"
                + " segment STRING, sv STRING, kind STRING, name STRING, cnt BIGINT, users BIGINT,"
                + " cnt_sq BIGINT, vsum DOUBLE, vsq DOUBLE>")
public class UserEvents extends ProcessTableFunction<Row> {

    static final long HOUR_MS = 3_600_000L;
    static final long DAY_MS = Contributions.DAY_MS;

    // Field positions (rows are position-based): the input, as aggregation.user_inputs_query
    // makes it (``user_id`` first) ...
    static final int IN_TYPE = 1, IN_TS = 2, IN_VALUE = 3, IN_SEGS = 4, IN_EXPERIMENT = 5,
            IN_GRP = 6, IN_START = 7, IN_END = 8;
    // ... an exposure (its first four fields are also the first four of a key of
    // ``activations`` and ``profiles``), and a counted event in the state ``events``.
    static final int X_EXPERIMENT = 0, X_GRP = 1, X_START = 2, X_END = 3, X_TU = 4,
            X_SEG_TS = 5, X_SEG_TYPES = 6, X_SEG_VALUES = 7;
    static final int E_TYPE = 0, E_TS = 1, E_VALUE = 2, E_SEGS = 3;

    static final String EXPOSURE = "experiment STRING, grp STRING, period_start BIGINT,"
            + " period_end BIGINT";

    private transient String planText;
    private transient OperatorPlan plan;

    public void eval(
            @StateHint(type = @DataTypeHint("ROW<list ARRAY<ROW<" + EXPOSURE + ", t_u BIGINT,"
                            + " seg_ts ARRAY<BIGINT>, seg_types ARRAY<STRING>,"
                            + " seg_values ARRAY<STRING>>>>"))
                    Row exposures,
            @StateHint(type = @DataTypeHint("MAP<ROW<" + EXPOSURE + ", ts BIGINT>, INT>"))
                    MapView<Row, Integer> activations,
            @StateHint(type = @DataTypeHint("MAP<BIGINT, ROW<ts ARRAY<BIGINT>, types ARRAY<STRING>>>"))
                    MapView<Long, Row> hours,
            @StateHint(
                            type =
                                    @DataTypeHint(
                                            "MAP<STRING, ROW<event_type STRING, ts BIGINT,"
                                                    + " `value` DOUBLE, segs ARRAY<STRING>>>"))
                    MapView<String, Row> events,
            @StateHint(type = @DataTypeHint("MAP<STRING, INT>")) MapView<String, Integer> types,
            @StateHint(type = @DataTypeHint("MAP<ROW<" + EXPOSURE + ", event_type STRING>, "
                            + Profile.TYPE + ">"))
                    MapView<Row, Row> profiles,
            @ArgumentHint({
                        ArgumentTrait.SET_SEMANTIC_TABLE,
                        ArgumentTrait.SUPPORT_UPDATES,
                        ArgumentTrait.REQUIRE_UPDATE_BEFORE
                    })
                    Row input,
            Integer cap,
            String plan)
            throws Exception {
        if (!plan.equals(planText)) {
            this.plan = OperatorPlan.parse(plan);
            this.planText = plan;
        }
        boolean adds = input.getKind() == RowKind.INSERT || input.getKind() == RowKind.UPDATE_AFTER;
        State state = new State(exposures, activations, hours, events, types, profiles);
        String experiment = input.getFieldAs(IN_EXPERIMENT);
        if (experiment == null) {
            if (!adds) {
                throw new IllegalStateException("events are insert-only, got " + input.getKind());
            }
            onEvent(state, input, cap);
        } else {
            onActivation(state, input, adds);
        }
    }

    /** One user's state entries, as {@code eval} gets them. */
    private static final class State {
        final Row exposures;
        final MapView<Row, Integer> activations;
        final MapView<Long, Row> hours;
        final MapView<String, Row> events;
        final MapView<String, Integer> types;
        final MapView<Row, Row> profiles;

        State(Row exposures, MapView<Row, Integer> activations, MapView<Long, Row> hours,
                MapView<String, Row> events, MapView<String, Integer> types,
                MapView<Row, Row> profiles) {
            this.exposures = exposures;
            this.activations = activations;
            this.hours = hours;
            this.events = events;
            this.types = types;
            this.profiles = profiles;
        }

        Row[] exposures() {
            Row[] list = exposures.getFieldAs(0);
            return list == null ? new Row[0] : list;
        }
    }

    // -- events ----------------------------------------------------------------------------

    private void onEvent(State state, Row input, int cap) throws Exception {
        long ts = input.<Long>getFieldAs(IN_TS);
        String type = input.getFieldAs(IN_TYPE);
        long hour = ts / HOUR_MS; // ts >= 2000-01-01: the same hour as SQL's ts / 3600000
        Row kept = state.hours.get(hour);
        Long[] times = kept == null ? new Long[0] : kept.getFieldAs(0);
        String[] types = kept == null ? new String[0] : kept.getFieldAs(1);
        int at = position(times, types, ts, type);
        if (at < 0 || at >= cap) {
            return; // a copy of an event already seen, or beyond the hour's cap
        }
        Long[] newTimes = insert(times, at, ts);
        String[] newTypes = insert(types, at, type);
        Row displaced = null;
        if (newTimes.length > cap) { // the hour's last counted event drops out
            String last = key(newTimes[cap], newTypes[cap]);
            displaced = state.events.get(last);
            state.events.remove(last);
            newTimes = Arrays.copyOf(newTimes, cap);
            newTypes = Arrays.copyOf(newTypes, cap);
        }
        state.hours.put(hour, Row.of(newTimes, newTypes));
        Row event = Row.of(type, ts, input.getField(IN_VALUE), input.getField(IN_SEGS));
        state.events.put(key(ts, type), event);
        counted(state, event, 1);
        if (displaced != null) {
            counted(state, displaced, -1);
        }
    }

    /**
     * Add (or take back: {@code sign} -1) {@code event} in each exposure it falls in, and count
     * its type. {@code state.events} no longer holds an event taken back.
     */
    private void counted(State state, Row event, int sign) throws Exception {
        long ts = event.<Long>getFieldAs(E_TS);
        String type = event.getFieldAs(E_TYPE);
        Double value = event.getFieldAs(E_VALUE);
        String[] segs = event.getFieldAs(E_SEGS);
        Row[] exposures = state.exposures();
        boolean changed = false;
        for (int i = 0; i < exposures.length; i++) {
            Row exposure = exposures[i];
            long tu = exposure.<Long>getFieldAs(X_TU);
            long end = exposure.<Long>getFieldAs(X_END);
            if (ts < tu || ts >= end) {
                continue;
            }
            Contributions out = new Contributions(plan, exposure);
            out.series("volume", type, ts, sign);
            SegmentFirst[] before = segmentFirsts(exposure);
            SegmentFirst[] after = sign > 0
                    ? withEvent(before, ts, type, segs)
                    : withoutEvent(state, before, ts, type, tu, end);
            // A new segment value changes the user's values of every type; else only this type's.
            boolean wide = !Arrays.equals(before, after);
            Collection<String> scope = wide ? userTypes(state, type) : List.of(type);
            Map<String, Profile> profiles = profiles(state, exposure, scope);
            Profile profile = profiles.computeIfAbsent(type, t -> new Profile());
            out.add(tu, before, profiles, scope, wide, -1);
            long first = profile.first;
            profile.add(ts / DAY_MS, sign, value == null ? 0.0 : value);
            if (sign > 0 && ts < first) {
                profile.first = ts;
            } else if (sign < 0 && ts == first) { // the next of its type, if any
                profile.first = Profile.NONE;
                for (Row other : state.events.values()) {
                    long t = other.<Long>getFieldAs(E_TS);
                    if (type.equals(other.getField(E_TYPE)) && tu <= t && t < end && t < profile.first) {
                        profile.first = t;
                    }
                }
            }
            out.add(tu, after, profiles, scope, wide, 1);
            propensity(out, type, first, profile.first);
            Row key = profileKey(exposure, type);
            if (profile.isEmpty()) {
                state.profiles.remove(key);
            } else {
                state.profiles.put(key, profile.toRow());
            }
            if (wide) {
                exposures[i] = exposureRow(exposure, tu, after);
                changed = true;
            }
            out.emit(this::collect);
        }
        if (changed) {
            state.exposures.setField(0, exposures);
        }
        Integer before = state.types.get(type);
        int after = (before == null ? 0 : before) + sign;
        if (after == 0) {
            state.types.remove(type);
        } else {
            state.types.put(type, after);
        }
        if (before == null || after == 0) {
            collect(Row.of("", "", 0L, 0L, 0L, "", "", Contributions.EVENT_TYPE, type, (long) sign,
                    0L, 0L, 0.0, 0.0));
        }
    }

    /** The segment firsts with {@code (ts, type)} added, where it comes first and has the field. */
    private SegmentFirst[] withEvent(SegmentFirst[] firsts, long ts, String type, String[] segs) {
        SegmentFirst[] out = firsts;
        for (int f = 0; segs != null && f < firsts.length; f++) {
            if (segs[f] != null && (firsts[f] == null || firsts[f].after(ts, type))) {
                out = out == firsts ? firsts.clone() : out;
                out[f] = new SegmentFirst(ts, type, segs[f]);
            }
        }
        return out;
    }

    /** The segment firsts with {@code (ts, type)} taken away: the next is looked up. */
    private SegmentFirst[] withoutEvent(State state, SegmentFirst[] firsts, long ts, String type,
            long tu, long end) throws Exception {
        SegmentFirst[] out = firsts;
        for (int f = 0; f < firsts.length; f++) {
            if (firsts[f] != null && firsts[f].ts() == ts && firsts[f].type().equals(type)) {
                out = out == firsts ? firsts.clone() : out;
                out[f] = null;
                for (Row event : state.events.values()) {
                    out[f] = earlier(out[f], event, f, tu, end);
                }
            }
        }
        return out;
    }

    /** {@code first}, or {@code event} when it is in [tu, end), has field {@code f} and comes first. */
    private static SegmentFirst earlier(SegmentFirst first, Row event, int f, long tu, long end) {
        long t = event.<Long>getFieldAs(E_TS);
        String[] segs = event.getFieldAs(E_SEGS);
        if (t < tu || t >= end || segs == null || segs[f] == null) {
            return first;
        }
        String type = event.getFieldAs(E_TYPE);
        return first == null || first.after(t, type) ? new SegmentFirst(t, type, segs[f]) : first;
    }

    /** The series' first events move from {@code before} to {@code now}. */
    private static void propensity(Contributions out, String type, long before, long now) {
        if (before != now) {
            if (before != Profile.NONE) {
                out.series("propensity", type, before, -1);
            }
            if (now != Profile.NONE) {
                out.series("propensity", type, now, 1);
            }
        }
    }

    /** Every type the user has counted events of, and {@code type}. */
    private static Collection<String> userTypes(State state, String type) throws Exception {
        Set<String> out = new LinkedHashSet<>();
        for (String t : state.types.keys()) {
            out.add(t);
        }
        if (type != null) {
            out.add(type);
        }
        return out;
    }

    /** The exposure's profiles of {@code types} and of their ratio partners (those it has). */
    private Map<String, Profile> profiles(State state, Row exposure, Collection<String> types)
            throws Exception {
        Map<String, Profile> out = new HashMap<>();
        List<String> wanted = new ArrayList<>(types);
        for (OperatorPlan.Pair pair : plan.pairsOf(exposure.getFieldAs(X_EXPERIMENT))) {
            if (pair.touches(types)) {
                wanted.add(pair.numerator());
                wanted.add(pair.denominator());
            }
        }
        for (String type : wanted) {
            if (!out.containsKey(type)) {
                Row row = state.profiles.get(profileKey(exposure, type));
                if (row != null) {
                    out.put(type, Profile.of(row));
                }
            }
        }
        return out;
    }

    // -- activations -----------------------------------------------------------------------

    private void onActivation(State state, Row input, boolean adds) throws Exception {
        Row key = Row.of(input.getField(IN_EXPERIMENT), input.getField(IN_GRP),
                input.getField(IN_START), input.getField(IN_END), input.getField(IN_TS));
        long end = key.<Long>getFieldAs(X_END);
        Integer n = state.activations.get(key);
        int now = (n == null ? 0 : n) + (adds ? 1 : -1);
        if (n == null && !adds) {
            return; // the retraction of an activation never added: nothing holds it
        }
        if (now <= 0) {
            state.activations.remove(key);
        } else {
            state.activations.put(key, now);
        }
        List<Row> exposures = new ArrayList<>(Arrays.asList(state.exposures()));
        int at = -1;
        for (int i = 0; i < exposures.size() && at < 0; i++) {
            if (sameExposure(exposures.get(i), key)) {
                at = i;
            }
        }
        Row old = at < 0 ? null : exposures.get(at);
        Long before = old == null ? null : old.<Long>getFieldAs(X_TU);
        Long after = null; // the earliest activation left
        for (Row activation : state.activations.keys()) {
            if (sameExposure(activation, key)) {
                long t = activation.<Long>getFieldAs(4);
                after = after == null || t < after ? t : after;
            }
        }
        if (before != null && before.equals(after)) {
            return;
        }
        // The exposure's values are taken back whole and added again from its counted events
        // in [t_u, end); the series' events between the two t_u are added or taken back.
        Contributions out = new Contributions(plan, key);
        Collection<String> types = userTypes(state, null);
        Map<String, Profile> was = Map.of();
        if (old != null) {
            was = profiles(state, old, types);
            out.add(before, segmentFirsts(old), was, types, true, -1);
            out.series("exposed", "", before, -1);
        }
        long lo = Math.min(before == null ? end : before, after == null ? end : after);
        long hi = Math.max(before == null ? end : before, after == null ? end : after);
        int sign = after != null && (before == null || after < before) ? 1 : -1;
        Map<String, Profile> profiles = new HashMap<>();
        SegmentFirst[] firsts = new SegmentFirst[plan.fields];
        for (Row event : state.events.values()) {
            long t = event.<Long>getFieldAs(E_TS);
            String type = event.getFieldAs(E_TYPE);
            if (lo <= t && t < hi) {
                out.series("volume", type, t, sign);
            }
            if (after != null && after <= t && t < end) {
                Double value = event.getFieldAs(E_VALUE);
                Profile p = profiles.computeIfAbsent(type, x -> new Profile());
                p.add(t / DAY_MS, 1, value == null ? 0.0 : value);
                p.first = Math.min(p.first, t);
                for (int f = 0; f < firsts.length; f++) {
                    firsts[f] = earlier(firsts[f], event, f, after, end);
                }
            }
        }
        for (String type : types) {
            Profile p = profiles.get(type);
            Profile w = was.get(type);
            propensity(out, type, w == null ? Profile.NONE : w.first, p == null ? Profile.NONE : p.first);
            if (p != null) {
                state.profiles.put(profileKey(key, type), p.toRow());
            } else if (w != null) {
                state.profiles.remove(profileKey(key, type));
            }
        }
        if (at >= 0) {
            exposures.remove(at);
        }
        if (after != null) {
            exposures.add(exposureRow(key, after, firsts));
            out.series("exposed", "", after, 1);
            out.add(after, firsts, profiles, types, true, 1);
        }
        state.exposures.setField(0, exposures.toArray(new Row[0]));
        out.emit(this::collect);
    }

    // -- rows and keys ---------------------------------------------------------------------

    private static boolean sameExposure(Row a, Row b) {
        return a.getField(X_EXPERIMENT).equals(b.getField(X_EXPERIMENT))
                && a.getField(X_GRP).equals(b.getField(X_GRP))
                && a.getField(X_START).equals(b.getField(X_START))
                && a.getField(X_END).equals(b.getField(X_END));
    }

    private static Row profileKey(Row exposure, String type) {
        return Row.of(exposure.getField(X_EXPERIMENT), exposure.getField(X_GRP),
                exposure.getField(X_START), exposure.getField(X_END), type);
    }

    /** An exposure's state row: its key (the first four fields of {@code key}), t_u, segment firsts. */
    private static Row exposureRow(Row key, long tu, SegmentFirst[] firsts) {
        Long[] ts = new Long[firsts.length];
        String[] types = new String[firsts.length];
        String[] values = new String[firsts.length];
        for (int f = 0; f < firsts.length; f++) {
            if (firsts[f] != null) {
                ts[f] = firsts[f].ts();
                types[f] = firsts[f].type();
                values[f] = firsts[f].value();
            }
        }
        return Row.of(key.getField(X_EXPERIMENT), key.getField(X_GRP), key.getField(X_START),
                key.getField(X_END), tu, ts, types, values);
    }

    private SegmentFirst[] segmentFirsts(Row exposure) {
        SegmentFirst[] out = new SegmentFirst[plan.fields];
        Long[] ts = exposure.getFieldAs(X_SEG_TS);
        String[] types = exposure.getFieldAs(X_SEG_TYPES);
        String[] values = exposure.getFieldAs(X_SEG_VALUES);
        for (int f = 0; ts != null && f < out.length && f < ts.length; f++) {
            if (ts[f] != null) {
                out[f] = new SegmentFirst(ts[f], types[f], values[f]);
            }
        }
        return out;
    }

    private static String key(long ts, String type) {
        return ts + ":" + type; // ts is digits only: the first ':' ends it
    }

    /**
     * Where {@code (ts, type)} goes in the hour's sorted keys; -1 when it is there already.
     * Types compare by code point, as SQL's ORDER BY and batch's sort (UTF-8 bytes) do.
     */
    static int position(Long[] times, String[] types, long ts, String type) {
        int lo = 0;
        int hi = times.length;
        if (hi > 0 && compare(times[hi - 1], types[hi - 1], ts, type) < 0) {
            return hi; // in order: after the last
        }
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            int c = compare(times[mid], types[mid], ts, type);
            if (c == 0) {
                return -1;
            } else if (c < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    static int compare(long ts1, String type1, long ts2, String type2) {
        int c = Long.compare(ts1, ts2);
        return c != 0 ? c : compareCodePoints(type1, type2);
    }

    static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return i < a.length() ? 1 : (j < b.length() ? -1 : 0);
    }

    private static <T> T[] insert(T[] values, int at, T value) {
        T[] out = Arrays.copyOf(values, values.length + 1);
        System.arraycopy(values, at, out, at + 1, values.length - at);
        out[at] = value;
        return out;
    }
}
