package udf.streaming;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.functions.ChangelogFunction;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;

/**
 * The per-user operator of the aggregation job: one process table function, partitioned by
 * user, in place of four keyed SQL stages (docs/streaming.md, "The per-user operator").
 *
 * <p>Its input is a user's valid events (insert-only) and filtered activations (a changelog:
 * a re-ramp that moves a period's end retracts the activations of the old period). It does,
 * per user, exactly what batch does (docs/metrics.md §1-3):
 *
 * <ul>
 *   <li><b>de-duplication</b>: equal {@code (event_type, ts)} are one event, the first to
 *       arrive wins;
 *   <li><b>the spam cap</b>: of the user's events in one clock hour, ordered by {@code (ts,
 *       event_type)}, only the first {@code cap} count; a late event that displaces a counted
 *       one retracts it;
 *   <li><b>first trigger time</b> {@code t_u}: the earliest activation per (experiment, group,
 *       period), whatever order activations arrive in;
 *   <li><b>the activation-event join</b>: every counted event with {@code t_u <= ts < period
 *       end}, whichever side arrives first (the seed's co-process join with an event buffer,
 *       without a time limit).
 * </ul>
 *
 * <p>Output rows, after the partition key {@code user_id}, by {@code kind}: {@code x} an
 * exposure {@code (experiment, grp, period_start, period_end, t_u)}; {@code c} a counted
 * event {@code (experiment, grp, period_start, period_end, event_type, ts, value, segs)};
 * {@code f} an exposure's first counted event of a type {@code (experiment, grp,
 * period_start, period_end, event_type, ts)}; {@code t} an event type the user has counted
 * events of. Each is inserted when it starts to hold and deleted (the same row) when it
 * stops: the changelog is insert/delete only.
 *
 * <p>State, per user: {@code exposures} (each with its {@code t_u}: a small value read on
 * every call, written only when an activation changes it), {@code activations} (each
 * exposure's activation times, with their multiplicities), {@code hours} (per clock hour, the
 * counted events' sort keys in order), {@code events} (every counted event by key), {@code
 * types} (counted events per type) and {@code firsts} (per exposure and type). An event in
 * order reads its hour and type and each exposure's first of its type, and writes its hour,
 * itself and its type's count: no scan. A displacement of an exposure's first event of a
 * type, or an exposure's change, reads the user's counted events.
 */
@DataTypeHint(
        "ROW<kind STRING, experiment STRING, grp STRING, period_start BIGINT, period_end BIGINT,"
                + " t_u BIGINT, event_type STRING, ts BIGINT, `value` DOUBLE, segs ARRAY<STRING>>")
public class UserEvents extends ProcessTableFunction<Row> implements ChangelogFunction {

    static final long HOUR_MS = 3_600_000L;

    // Field positions (rows are position-based): the input, as aggregation.user_inputs_query
    // makes it (``user_id`` first) ...
    static final int IN_TYPE = 1, IN_TS = 2, IN_VALUE = 3, IN_SEGS = 4, IN_EXPERIMENT = 5,
            IN_GRP = 6, IN_START = 7, IN_END = 8;
    // ... an exposure (also the first four fields of a key of ``activations`` and
    // ``firsts``), and a counted event in the state ``events``.
    static final int X_EXPERIMENT = 0, X_GRP = 1, X_START = 2, X_END = 3, X_TU = 4;
    static final int E_TYPE = 0, E_TS = 1, E_VALUE = 2, E_SEGS = 3;

    static final String EXPOSURE = "experiment STRING, grp STRING, period_start BIGINT,"
            + " period_end BIGINT";

    public void eval(
            @StateHint(type = @DataTypeHint("ROW<list ARRAY<ROW<" + EXPOSURE + ", t_u BIGINT>>>"))
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
            @StateHint(type = @DataTypeHint("MAP<ROW<" + EXPOSURE + ", event_type STRING>, BIGINT>"))
                    MapView<Row, Long> firsts,
            @ArgumentHint({
                        ArgumentTrait.SET_SEMANTIC_TABLE,
                        ArgumentTrait.SUPPORT_UPDATES,
                        ArgumentTrait.REQUIRE_UPDATE_BEFORE
                    })
                    Row input,
            Integer cap)
            throws Exception {
        boolean adds = input.getKind() == RowKind.INSERT || input.getKind() == RowKind.UPDATE_AFTER;
        State state = new State(exposures, activations, hours, events, types, firsts);
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

    @Override
    public ChangelogMode getChangelogMode(ChangelogContext context) {
        return ChangelogMode.newBuilder()
                .addContainedKind(RowKind.INSERT)
                .addContainedKind(RowKind.DELETE)
                .build();
    }

    /** One user's state entries, as {@code eval} gets them. */
    private static final class State {
        final Row exposures;
        final MapView<Row, Integer> activations;
        final MapView<Long, Row> hours;
        final MapView<String, Row> events;
        final MapView<String, Integer> types;
        final MapView<Row, Long> firsts;

        State(Row exposures, MapView<Row, Integer> activations, MapView<Long, Row> hours,
                MapView<String, Row> events, MapView<String, Integer> types,
                MapView<Row, Long> firsts) {
            this.exposures = exposures;
            this.activations = activations;
            this.hours = hours;
            this.events = events;
            this.types = types;
            this.firsts = firsts;
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
        counted(state, event, RowKind.INSERT);
        if (displaced != null) {
            counted(state, displaced, RowKind.DELETE);
        }
    }

    /**
     * Emit (or take back) {@code event} for each exposure it falls in, with the exposure's
     * first event of its type when that changes, and count its type. {@code state.events}
     * no longer holds an event taken back.
     */
    private void counted(State state, Row event, RowKind kind) throws Exception {
        long ts = event.<Long>getFieldAs(E_TS);
        String type = event.getFieldAs(E_TYPE);
        for (Row exposure : state.exposures()) {
            long tu = exposure.<Long>getFieldAs(X_TU);
            long end = exposure.<Long>getFieldAs(X_END);
            if (tu <= ts && ts < end) {
                collect(countedRow(kind, exposure, event));
                Row firstKey = firstKey(exposure, type);
                Long first = state.firsts.get(firstKey);
                Long now = first;
                if (kind == RowKind.INSERT && (first == null || ts < first)) {
                    now = ts;
                } else if (kind == RowKind.DELETE && first != null && first == ts) {
                    now = null; // the next of its type, if any
                    for (Row other : state.events.values()) {
                        long t = other.<Long>getFieldAs(E_TS);
                        if (type.equals(other.getField(E_TYPE)) && tu <= t && t < end
                                && (now == null || t < now)) {
                            now = t;
                        }
                    }
                }
                replaceFirst(state, exposure, type, first, now);
            }
        }
        Integer before = state.types.get(type);
        int after = (before == null ? 0 : before) + (kind == RowKind.INSERT ? 1 : -1);
        if (after == 0) {
            state.types.remove(type);
        } else {
            state.types.put(type, after);
        }
        if (before == null || after == 0) {
            collect(Row.ofKind(kind, "t", null, null, null, null, null, type, null, null, null));
        }
    }

    /** Record and emit an exposure's first event of {@code type} moving from before to now. */
    private void replaceFirst(State state, Row exposure, String type, Long before, Long now)
            throws Exception {
        if (Objects.equals(before, now)) {
            return;
        }
        if (before != null) {
            collect(firstRow(RowKind.DELETE, exposure, type, before));
        }
        if (now != null) {
            collect(firstRow(RowKind.INSERT, exposure, type, now));
            state.firsts.put(firstKey(exposure, type), now);
        } else {
            state.firsts.remove(firstKey(exposure, type));
        }
    }

    // -- activations -----------------------------------------------------------------------

    private void onActivation(State state, Row input, boolean adds) throws Exception {
        Row exposure = Row.of(input.getField(IN_EXPERIMENT), input.getField(IN_GRP),
                input.getField(IN_START), input.getField(IN_END), null);
        long end = exposure.<Long>getFieldAs(X_END);
        Row key = Row.of(exposure.getField(X_EXPERIMENT), exposure.getField(X_GRP),
                exposure.getField(X_START), exposure.getField(X_END), input.getField(IN_TS));
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
            if (sameExposure(exposures.get(i), exposure)) {
                at = i;
            }
        }
        Long before = at < 0 ? null : exposures.get(at).<Long>getFieldAs(X_TU);
        Long after = null; // the earliest activation left
        for (Row activation : state.activations.keys()) {
            if (sameExposure(activation, exposure)) {
                long t = activation.<Long>getFieldAs(4);
                after = after == null || t < after ? t : after;
            }
        }
        if (Objects.equals(before, after)) {
            return;
        }
        exposure.setField(X_TU, after);
        if (at >= 0) {
            exposures.remove(at);
        }
        if (after != null) {
            exposures.add(exposure);
        }
        state.exposures.setField(0, exposures.toArray(new Row[0]));
        if (before != null) {
            collect(exposureRow(RowKind.DELETE, exposure, before));
        }
        if (after != null) {
            collect(exposureRow(RowKind.INSERT, exposure, after));
        }
        // The counted events of [t_u, end) move with t_u: those between the two are added
        // (an earlier activation) or removed (the earliest activation retracted); the firsts
        // of each type are found again.
        long lo = Math.min(before == null ? end : before, after == null ? end : after);
        long hi = Math.max(before == null ? end : before, after == null ? end : after);
        RowKind kind = after != null && (before == null || after < before) ? RowKind.INSERT : RowKind.DELETE;
        Map<String, Long> firsts = new HashMap<>(); // of each type in [after, end)
        Set<String> seen = new HashSet<>(); // each type in [min(before, after), end)
        for (Row event : state.events.values()) {
            long t = event.<Long>getFieldAs(E_TS);
            String type = event.getFieldAs(E_TYPE);
            if (lo <= t && t < hi) {
                collect(countedRow(kind, exposure, event));
            }
            if (after != null && after <= t && t < end) {
                firsts.merge(type, t, Math::min);
            }
            if (lo <= t && t < end) {
                seen.add(type);
            }
        }
        for (String type : seen) {
            Long old = before == null ? null : state.firsts.get(firstKey(exposure, type));
            replaceFirst(state, exposure, type, old, firsts.get(type));
        }
    }

    // -- rows and keys ---------------------------------------------------------------------

    private static boolean sameExposure(Row a, Row b) {
        return a.getField(X_EXPERIMENT).equals(b.getField(X_EXPERIMENT))
                && a.getField(X_GRP).equals(b.getField(X_GRP))
                && a.getField(X_START).equals(b.getField(X_START))
                && a.getField(X_END).equals(b.getField(X_END));
    }

    private static Row firstKey(Row exposure, String type) {
        return Row.of(exposure.getField(X_EXPERIMENT), exposure.getField(X_GRP),
                exposure.getField(X_START), exposure.getField(X_END), type);
    }

    private static Row countedRow(RowKind kind, Row exposure, Row event) {
        return Row.ofKind(
                kind, "c", exposure.getField(X_EXPERIMENT), exposure.getField(X_GRP),
                exposure.getField(X_START), exposure.getField(X_END), null,
                event.getField(E_TYPE), event.getField(E_TS), event.getField(E_VALUE),
                event.getField(E_SEGS));
    }

    private static Row firstRow(RowKind kind, Row exposure, String type, long ts) {
        return Row.ofKind(
                kind, "f", exposure.getField(X_EXPERIMENT), exposure.getField(X_GRP),
                exposure.getField(X_START), exposure.getField(X_END), null, type, ts, null, null);
    }

    private static Row exposureRow(RowKind kind, Row exposure, long tu) {
        return Row.ofKind(
                kind, "x", exposure.getField(X_EXPERIMENT), exposure.getField(X_GRP),
                exposure.getField(X_START), exposure.getField(X_END), tu, null, null, null, null);
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
