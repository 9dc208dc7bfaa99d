package udf.streaming;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

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
 * {@code t} an event type the user has counted events of. Each is inserted when it starts to
 * hold and deleted (the same row) when it stops: the changelog is insert/delete only.
 *
 * <p>State, per user: {@code user} (event types with their counts, and the exposures with
 * their activation times), {@code hours} (per clock hour, the counted events' sort keys in
 * order) and {@code events} (every counted event by key). An event in order costs one read
 * and write of each, and no scan; a displacement or an exposure's change reads the user's
 * counted events.
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
    // ... the user's state, an exposure in it, and a counted event in the state ``events``.
    static final int TYPES = 0, EXPOSURES = 1;
    static final int X_EXPERIMENT = 0, X_GRP = 1, X_START = 2, X_END = 3, X_ACTS = 4;
    static final int E_TYPE = 0, E_TS = 1, E_VALUE = 2, E_SEGS = 3;

    public void eval(
            @StateHint(
                            type =
                                    @DataTypeHint(
                                            "ROW<types MAP<STRING, INT>, exposures ARRAY<ROW<"
                                                    + "experiment STRING, grp STRING,"
                                                    + " period_start BIGINT, period_end BIGINT,"
                                                    + " acts MAP<BIGINT, INT>>>>"))
                    Row user,
            @StateHint(type = @DataTypeHint("MAP<BIGINT, ROW<ts ARRAY<BIGINT>, types ARRAY<STRING>>>"))
                    MapView<Long, Row> hours,
            @StateHint(
                            type =
                                    @DataTypeHint(
                                            "MAP<STRING, ROW<event_type STRING, ts BIGINT,"
                                                    + " `value` DOUBLE, segs ARRAY<STRING>>>"))
                    MapView<String, Row> events,
            @ArgumentHint({
                        ArgumentTrait.SET_SEMANTIC_TABLE,
                        ArgumentTrait.SUPPORT_UPDATES,
                        ArgumentTrait.REQUIRE_UPDATE_BEFORE
                    })
                    Row input,
            Integer cap)
            throws Exception {
        boolean adds = input.getKind() == RowKind.INSERT || input.getKind() == RowKind.UPDATE_AFTER;
        String experiment = input.getFieldAs(IN_EXPERIMENT);
        if (experiment == null) {
            if (!adds) {
                throw new IllegalStateException("events are insert-only, got " + input.getKind());
            }
            onEvent(user, hours, events, input, cap);
        } else {
            onActivation(user, events, input, experiment, adds);
        }
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogContext context) {
        return ChangelogMode.newBuilder()
                .addContainedKind(RowKind.INSERT)
                .addContainedKind(RowKind.DELETE)
                .build();
    }

    // -- events ----------------------------------------------------------------------------

    private void onEvent(
            Row user, MapView<Long, Row> hours, MapView<String, Row> events, Row input, int cap)
            throws Exception {
        long ts = input.<Long>getFieldAs(IN_TS);
        String type = input.getFieldAs(IN_TYPE);
        long hour = ts / HOUR_MS; // ts >= 2000-01-01: the same hour as SQL's ts / 3600000
        Row kept = hours.get(hour);
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
            displaced = events.get(last);
            events.remove(last);
            newTimes = Arrays.copyOf(newTimes, cap);
            newTypes = Arrays.copyOf(newTypes, cap);
        }
        hours.put(hour, Row.of(newTimes, newTypes));
        Row event = Row.of(type, ts, input.getField(IN_VALUE), input.getField(IN_SEGS));
        events.put(key(ts, type), event);
        counted(user, event, RowKind.INSERT);
        if (displaced != null) {
            counted(user, displaced, RowKind.DELETE);
        }
    }

    /** Emit ``event`` for each exposure it falls in, and count its type. */
    private void counted(Row user, Row event, RowKind kind) {
        long ts = event.<Long>getFieldAs(E_TS);
        for (Row exposure : exposures(user)) {
            Long tu = firstTrigger(exposure);
            if (tu <= ts && ts < exposure.<Long>getFieldAs(X_END)) {
                collect(countedRow(kind, exposure, event));
            }
        }
        String type = event.getFieldAs(E_TYPE);
        Map<String, Integer> types = user.getFieldAs(TYPES);
        if (types == null) {
            types = new HashMap<>();
            user.setField(TYPES, types);
        }
        int before = types.getOrDefault(type, 0);
        int after = before + (kind == RowKind.INSERT ? 1 : -1);
        if (after == 0) {
            types.remove(type);
        } else {
            types.put(type, after);
        }
        if (before == 0 || after == 0) {
            collect(Row.ofKind(kind, "t", null, null, null, null, null, type, null, null, null));
        }
    }

    // -- activations -----------------------------------------------------------------------

    private void onActivation(
            Row user, MapView<String, Row> events, Row input, String experiment, boolean adds)
            throws Exception {
        String grp = input.getFieldAs(IN_GRP);
        Long start = input.getFieldAs(IN_START);
        Long end = input.getFieldAs(IN_END);
        long ts = input.<Long>getFieldAs(IN_TS);
        List<Row> exposures = new ArrayList<>(Arrays.asList(exposures(user)));
        Row exposure = null;
        for (Row e : exposures) {
            if (experiment.equals(e.getField(X_EXPERIMENT)) && grp.equals(e.getField(X_GRP))
                    && start.equals(e.getField(X_START))
                    && end.equals(e.getField(X_END))) {
                exposure = e;
            }
        }
        if (exposure == null) {
            if (!adds) {
                return; // the retraction of an activation never added: nothing holds it
            }
            exposure = Row.of(experiment, grp, start, end, new HashMap<Long, Integer>());
            exposures.add(exposure);
        }
        Long before = firstTrigger(exposure);
        Map<Long, Integer> acts = exposure.getFieldAs(X_ACTS);
        int n = acts.getOrDefault(ts, 0) + (adds ? 1 : -1);
        if (n <= 0) {
            acts.remove(ts);
        } else {
            acts.put(ts, n);
        }
        Long after = firstTrigger(exposure);
        if (acts.isEmpty()) {
            exposures.remove(exposure);
        }
        user.setField(EXPOSURES, exposures.toArray(new Row[0]));
        if (Objects.equals(before, after)) {
            return;
        }
        if (before != null) {
            collect(exposureRow(RowKind.DELETE, exposure, before));
        }
        if (after != null) {
            collect(exposureRow(RowKind.INSERT, exposure, after));
        }
        // The counted events of [t_u, end) move with t_u: those between the two are added
        // (an earlier activation) or removed (the earliest activation retracted).
        long lo = Math.min(before == null ? end : before, after == null ? end : after);
        long hi = Math.max(before == null ? end : before, after == null ? end : after);
        hi = Math.min(hi, end);
        RowKind kind = after != null && (before == null || after < before) ? RowKind.INSERT : RowKind.DELETE;
        for (Row event : events.values()) {
            long t = event.<Long>getFieldAs(E_TS);
            if (lo <= t && t < hi) {
                collect(countedRow(kind, exposure, event));
            }
        }
    }

    // -- rows and state --------------------------------------------------------------------

    private static Row[] exposures(Row user) {
        Row[] exposures = user.getFieldAs(EXPOSURES);
        return exposures == null ? new Row[0] : exposures;
    }

    /** The earliest activation of an exposure; null when it has none. */
    private static Long firstTrigger(Row exposure) {
        Map<Long, Integer> acts = exposure.getFieldAs(X_ACTS);
        Long first = null;
        for (Long t : acts.keySet()) {
            if (first == null || t < first) {
                first = t;
            }
        }
        return first;
    }

    private static Row countedRow(RowKind kind, Row exposure, Row event) {
        return Row.ofKind(
                kind, "c", exposure.getField(X_EXPERIMENT), exposure.getField(X_GRP),
                exposure.getField(X_START), exposure.getField(X_END), null,
                event.getField(E_TYPE), event.getField(E_TS), event.getField(E_VALUE),
                event.getField(E_SEGS));
    }

    private static Row exposureRow(RowKind kind, Row exposure, long tu) {
        return Row.ofKind(
                kind, "x", exposure.getField(X_EXPERIMENT), exposure.getField(X_GRP),
                exposure.getField(X_START), exposure.getField(X_END), tu, null,
                null, null, null);
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

    private static Long[] insert(Long[] values, int at, Long value) {
        Long[] out = new Long[values.length + 1];
        System.arraycopy(values, 0, out, 0, at);
        out[at] = value;
        System.arraycopy(values, at, out, at + 1, values.length - at);
        return out;
    }

    private static String[] insert(String[] values, int at, String value) {
        String[] out = new String[values.length + 1];
        System.arraycopy(values, 0, out, 0, at);
        out[at] = value;
        System.arraycopy(values, at, out, at + 1, values.length - at);
        return out;
    }
}
