package udf.streaming;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.utils.LogicalTypeParser;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.Collector;

import udf.streaming.Contributions.SegmentFirst;

/**
 * The per-user operator of the aggregation job: one keyed function, the stream keyed by user
 * (docs/streaming.md, "The per-user operator").
 *
 * <p>Its input is a user's valid events (insert-only) and filtered activations (a changelog:
 * a re-ramp that moves a period's end or splits an allocation interval retracts the
 * activations it changes), as rows of {@code (user_id, event_type, ts, value, segs,
 * experiment, grp, period_start, period_end, interval_start)} ({@code
 * aggregation.user_inputs_query}; an event has no experiment), keyed by {@link User}. It
 * does, per user, exactly what batch does (docs/metrics.md §1-5, §8.4, §14):
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
 *       their changes ({@link Contributions});
 *   <li><b>users in two groups</b>: the days the user is also in another group of the
 *       experiment ({@link OtherGroups}), counted under {@code multi} and left out where the
 *       experiment excludes such users; a new or moved exposure re-counts the user's
 *       exposures of the other groups.
 * </ul>
 *
 * <p>Output, insert-only, {@link #OUTPUT}: {@code (experiment, grp, period_start, period_end,
 * d, segment, sv, kind, name, cnt, users, cnt_sq, vsum, vsq, nonzero)}, a change to add to a
 * group's totals: {@code kind} {@code exposed}, {@code type}, {@code pair}, {@code multi}
 * or {@code interval} a change of the user's values from day {@code d} on ({@link
 * Contributions}); {@code series_exposed}, {@code series_volume} or
 * {@code series_propensity} a change of {@code cnt} exposures, counted events or first events
 * of a type in 15-minute bucket {@code d}; {@code event_type} (no exposure) a change of the
 * number of users with counted events of type {@code name}: +1 with a user's first, -1 when a
 * displacement takes back the last (one row per user and type, not one per event).
 *
 * <p>State, per user: {@code user}, a small value read when an input needs it and written
 * only when it changes: its {@code exposures} ({@link Exposure}: each with its {@code t_u},
 * the interval of {@code t_u} and segment firsts) and the {@code types} it has counted
 * events of; {@code activations} (per exposure, one entry: its activations, each a time and
 * an interval, with their multiplicities), {@code hours}
 * (per clock hour, its counted {@link Event}s in the cap's order: the hour is what the cap
 * and a displacement read, and most hours hold one or two events) and {@code profiles} (per
 * type, the user's counted events of it per day in each exposure: {@link Profile}; one entry
 * for all the exposures an event falls in). Entries are kept as bytes ({@link Codec}). An
 * event in order reads its hour, the user and its type's profiles (and a ratio partner's),
 * and writes its hour and the profiles: no scan. A displaced first event, a new segment
 * value or an exposure's change reads the user's counted events. With a time to live
 * ({@code ttlMs} above 0), an entry is dropped that long after it was last written (in
 * processing time), and never read once it has expired.
 *
 * <p>Not a process table function (SQL's {@code PARTITION BY}), which this was: its runner
 * reads a {@code ROW} state entry before every call whether the call needs it or not, hashes
 * and compares it after, and converts every output row on its way to a DataStream
 * (docs/benchmarks.md, "2026-12-05 (late night)").
 */
public class UserEvents extends KeyedProcessFunction<Object, Row, RowData> {

    private static final long serialVersionUID = 1L;

    /** Its rows' type. */
    public static final String OUTPUT = "ROW<experiment STRING NOT NULL, grp STRING NOT NULL,"
            + " period_start BIGINT NOT NULL, period_end BIGINT NOT NULL, d BIGINT NOT NULL,"
            + " segment STRING NOT NULL, sv STRING NOT NULL, kind STRING NOT NULL,"
            + " name STRING NOT NULL, cnt BIGINT, users BIGINT, cnt_sq BIGINT, vsum DOUBLE,"
            + " vsq DOUBLE, nonzero BIGINT>";

    static final long HOUR_MS = 3_600_000L;
    static final long DAY_MS = Contributions.DAY_MS;

    // Field positions of the input (rows are position-based), as aggregation.user_inputs_query
    // makes it, ``user_id`` first.
    static final int IN_USER = 0, IN_TYPE = 1, IN_TS = 2, IN_VALUE = 3, IN_SEGS = 4,
            IN_EXPERIMENT = 5, IN_GRP = 6, IN_START = 7, IN_END = 8, IN_INTERVAL = 9;

    private final int cap;
    private final String planText;
    private final long ttlMs;

    private transient OperatorPlan plan;
    private transient Texts texts;
    private transient ValueState<byte[]> user;
    private transient MapState<String, byte[]> activations;
    private transient MapState<Long, byte[]> hours;
    private transient MapState<String, byte[]> profiles;
    private transient Collector<RowData> out;

    /**
     * {@code cap}: the spam cap; {@code plan}: the segments and ratio pairs ({@link
     * OperatorPlan}); {@code ttlMs}: the state's time to live in milliseconds (0: none). As
     * text, the way Python makes it.
     */
    public UserEvents(String cap, String plan, String ttlMs) {
        this.cap = Integer.parseInt(cap);
        this.planText = plan;
        this.ttlMs = Long.parseLong(ttlMs);
        OperatorPlan.parse(plan); // a bad plan fails here, not in the job
    }

    /** The type of its rows. Static: an instance's method, called from Python, fails when
     * an earlier environment's class loader loaded the class first (py4j keeps the method). */
    public static TypeInformation<RowData> outputType() {
        return InternalTypeInfo.of(
                (RowType) LogicalTypeParser.parse(OUTPUT, UserEvents.class.getClassLoader()));
    }

    /** The key the input is keyed by: its {@code user_id}. */
    public static final class User implements KeySelector<Row, Object> {

        private static final long serialVersionUID = 1L;

        @Override
        public Object getKey(Row row) {
            return row.getField(IN_USER);
        }
    }

    @Override
    public void open(OpenContext context) {
        plan = OperatorPlan.parse(planText);
        texts = new Texts();
        TypeInformation<byte[]> bytes = PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
        user = getRuntimeContext().getState(lived(new ValueStateDescriptor<>("user", bytes)));
        activations = getRuntimeContext().getMapState(
                lived(new MapStateDescriptor<>("activations", Types.STRING, bytes)));
        hours = getRuntimeContext().getMapState(
                lived(new MapStateDescriptor<>("hours", Types.LONG, bytes)));
        profiles = getRuntimeContext().getMapState(
                lived(new MapStateDescriptor<>("profiles", Types.STRING, bytes)));
    }

    /** {@code descriptor} with the time to live, if there is one: from each write on. */
    private <D extends StateDescriptor<?, ?>> D lived(D descriptor) {
        if (ttlMs > 0) {
            descriptor.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(ttlMs))
                    .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                    .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                    .build());
        }
        return descriptor;
    }

    @Override
    public void processElement(Row input, Context context, Collector<RowData> collector)
            throws Exception {
        out = collector;
        boolean adds = input.getKind() == RowKind.INSERT || input.getKind() == RowKind.UPDATE_AFTER;
        State state = new State(user, activations, hours, profiles);
        if (input.getField(IN_EXPERIMENT) == null) {
            if (!adds) {
                throw new IllegalStateException("events are insert-only, got " + input.getKind());
            }
            onEvent(state, input);
        } else {
            onActivation(state, input, adds);
        }
        state.write();
    }

    private void collect(RowData row) {
        out.collect(row);
    }

    /** One user's state entries, read when first needed and written back once per input. */
    private static final class State {
        private final ValueState<byte[]> userState;
        final MapState<String, byte[]> activations;
        final MapState<Long, byte[]> hours;
        private final MapState<String, byte[]> profiles;
        // The user's value, read on first use: its exposures and types, each encoded.
        private boolean userRead;
        private boolean userChanged;
        private byte[] exposures;
        private byte[] types;
        private List<Event> counted; // read once per call: every change of hours comes first
        // The profiles read in this call, per type and exposure key; the changed types are
        // written back once, at the end of the call.
        private final Map<String, Map<String, Profile>> byType = new HashMap<>();
        private final Set<String> changedTypes = new HashSet<>();

        State(ValueState<byte[]> user, MapState<String, byte[]> activations,
                MapState<Long, byte[]> hours, MapState<String, byte[]> profiles) {
            this.userState = user;
            this.activations = activations;
            this.hours = hours;
            this.profiles = profiles;
        }

        private void readUser() throws Exception {
            if (!userRead) {
                byte[] data = userState.value();
                if (data != null) {
                    Codec.Input in = new Codec.Input(data);
                    exposures = readPart(in, data);
                    types = readPart(in, data);
                }
                userRead = true;
            }
        }

        private static byte[] readPart(Codec.Input in, byte[] data) {
            int n = in.readInt();
            if (n < 0) {
                return null;
            }
            byte[] part = Arrays.copyOfRange(data, in.position(), in.position() + n);
            in.skip(n);
            return part;
        }

        private static void writePart(Codec.Output out, byte[] part) {
            out.writeInt(part == null ? -1 : part.length);
            if (part != null) {
                out.write(part, 0, part.length);
            }
        }

        List<Exposure> exposureList() throws Exception {
            readUser();
            return Exposure.decode(exposures);
        }

        void setExposures(List<Exposure> list) throws Exception {
            readUser();
            exposures = Exposure.encode(list);
            userChanged = true;
        }

        /** The types the user has counted events of. */
        Set<String> types() throws Exception {
            readUser();
            Set<String> out = new LinkedHashSet<>();
            if (types != null) {
                Codec.decode(types, in -> {
                    for (int n = in.readInt(); n > 0; n--) {
                        out.add(in.readUTF());
                    }
                    return out;
                });
            }
            return out;
        }

        void setTypes(Set<String> set) throws Exception {
            readUser();
            types = Codec.encode(out -> {
                out.writeInt(set.size());
                set.forEach(out::writeUTF);
            });
            userChanged = true;
        }

        /** The user's profile of {@code type} in exposure {@code x}; null when it has none. */
        Profile profile(Exposure x, String type) throws Exception {
            return ofType(type).get(x.key());
        }

        /** Keep {@code profile} as the user's profile of {@code type} in {@code x} (none when empty). */
        void setProfile(Exposure x, String type, Profile profile) throws Exception {
            Map<String, Profile> exposures = ofType(type);
            if (profile.isEmpty()) {
                exposures.remove(x.key());
            } else {
                exposures.put(x.key(), profile);
            }
            changedTypes.add(type);
        }

        private Map<String, Profile> ofType(String type) throws Exception {
            Map<String, Profile> exposures = byType.get(type);
            if (exposures == null) {
                exposures = Profile.decodeAll(profiles.get(type));
                byType.put(type, exposures);
            }
            return exposures;
        }

        /** Write back what this input changed. */
        void write() throws Exception {
            for (String type : changedTypes) {
                Map<String, Profile> exposures = byType.get(type);
                if (exposures.isEmpty()) {
                    profiles.remove(type);
                } else {
                    profiles.put(type, Profile.encodeAll(exposures));
                }
            }
            if (userChanged) {
                userState.update(Codec.encode(out -> {
                    writePart(out, exposures);
                    writePart(out, types);
                }));
            }
        }

        /** The user's counted events (a scan of {@code hours}, done at most once per call). */
        List<Event> counted() throws Exception {
            if (counted == null) {
                counted = new ArrayList<>();
                for (byte[] hour : hours.values()) {
                    counted.addAll(Arrays.asList(Hour.of(hour).events()));
                }
            }
            return counted;
        }
    }

    // -- events ----------------------------------------------------------------------------

    private void onEvent(State state, Row input) throws Exception {
        long ts = input.<Long>getFieldAs(IN_TS);
        String type = input.getFieldAs(IN_TYPE);
        long hour = ts / HOUR_MS; // ts >= 2000-01-01: the same hour as SQL's ts / 3600000
        Hour kept = Hour.of(state.hours.get(hour));
        int at = kept.position(ts, type.getBytes(StandardCharsets.UTF_8));
        if (at < 0 || at >= cap) {
            return; // a copy of an event already seen, or beyond the hour's cap
        }
        Event event = new Event(type, ts, input.getFieldAs(IN_VALUE), input.getFieldAs(IN_SEGS));
        // the hour's last counted event drops out when it held the cap already
        Event displaced = kept.size() >= cap ? kept.event(cap - 1) : null;
        state.hours.put(hour, kept.with(at, Codec.encode(event::write), cap));
        counted(state, event, 1);
        if (displaced != null) {
            counted(state, displaced, -1);
        }
    }

    /**
     * Add (or take back: {@code sign} -1) {@code event} in each exposure it falls in, and count
     * its type. {@code state.hours} no longer holds an event taken back.
     */
    private void counted(State state, Event event, int sign) throws Exception {
        List<Exposure> exposures = state.exposureList();
        boolean changed = false;
        for (int i = 0; i < exposures.size(); i++) {
            Exposure x = exposures.get(i);
            if (!x.holds(event.ts())) {
                if (precedes(x, event.ts())) {
                    covariate(state, exposures, x, event, sign);
                }
                continue;
            }
            Contributions out = new Contributions(plan, x);
            out.series("volume", event.type(), event.ts(), sign);
            SegmentFirst[] after = sign > 0
                    ? withEvent(x.firsts(), event)
                    : withoutEvent(state, x, event);
            // A new segment value changes the user's values of every type; else only this type's.
            boolean wide = !Arrays.equals(x.firsts(), after);
            Collection<String> scope = wide ? userTypes(state, event.type()) : List.of(event.type());
            Map<String, Profile> profiles = profiles(state, x, scope);
            Profile profile = profiles.computeIfAbsent(event.type(), t -> new Profile());
            OtherGroups others = OtherGroups.of(exposures, x);
            out.add(x, profiles, scope, wide, others, -1);
            long first = profile.first;
            profile.add(event.ts() / DAY_MS, sign, event.valueOrZero());
            if (sign > 0 && event.ts() < first) {
                profile.first = event.ts();
            } else if (sign < 0 && event.ts() == first) { // the next of its type, if any
                profile.first = Profile.NONE;
                for (Event other : state.counted()) {
                    if (other.type().equals(event.type()) && x.holds(other.ts())) {
                        profile.first = Math.min(profile.first, other.ts());
                    }
                }
            }
            out.add(x.with(after), profiles, scope, wide, others, 1);
            propensity(out, event.type(), first, profile.first);
            state.setProfile(x, event.type(), profile);
            if (wide) {
                exposures.set(i, x.with(after));
                changed = true;
            }
            out.emit(texts, this::collect);
        }
        if (changed) {
            state.setExposures(exposures);
        }
        countType(state, event.type(), sign);
    }

    /** Whether {@code ts} is in {@code x}'s CUPED covariate window, {@code [t_u - P, t_u)}. */
    private boolean precedes(Exposure x, long ts) {
        long window = plan.preWindow(x.experiment());
        return window > 0 && x.tu() - window <= ts && ts < x.tu();
    }

    /** Add (or take back: {@code sign} -1) {@code event} in {@code x}'s covariate. */
    private void covariate(State state, List<Exposure> exposures, Exposure x, Event event,
            int sign) throws Exception {
        Contributions out = new Contributions(plan, x);
        List<String> scope = List.of(event.type());
        Map<String, Profile> profiles = profiles(state, x, scope);
        Profile profile = profiles.computeIfAbsent(event.type(), t -> new Profile());
        OtherGroups others = OtherGroups.of(exposures, x);
        out.add(x, profiles, scope, false, others, -1);
        profile.addPre(sign, event.valueOrZero());
        out.add(x, profiles, scope, false, others, 1);
        state.setProfile(x, event.type(), profile);
        out.emit(texts, this::collect);
    }

    /**
     * Count the user among those with counted events of {@code type} when this is the first
     * (or no longer when {@code sign} -1 took back the last): an {@code event_type} change.
     */
    private void countType(State state, String type, int sign) throws Exception {
        Set<String> types = state.types();
        boolean changed = sign > 0
                ? types.add(type)
                : state.counted().stream().noneMatch(e -> e.type().equals(type)) && types.remove(type);
        if (changed) {
            state.setTypes(types);
            StringData none = texts.of("");
            collect(GenericRowData.of(none, none, 0L, 0L, 0L, none, none,
                    texts.of(Contributions.EVENT_TYPE), texts.of(type), (long) sign, 0L, 0L, 0.0,
                    0.0, 0L));
        }
    }

    /** The segment firsts with {@code event} added, where it comes first and has the field. */
    private static SegmentFirst[] withEvent(SegmentFirst[] firsts, Event event) {
        SegmentFirst[] out = firsts;
        for (int f = 0; f < firsts.length; f++) {
            String value = event.seg(f);
            if (value != null && (firsts[f] == null || firsts[f].after(event.ts(), event.type()))) {
                out = out == firsts ? firsts.clone() : out;
                out[f] = new SegmentFirst(event.ts(), event.type(), value);
            }
        }
        return out;
    }

    /** The exposure's segment firsts with {@code event} taken away: the next is looked up. */
    private static SegmentFirst[] withoutEvent(State state, Exposure x, Event event)
            throws Exception {
        SegmentFirst[] firsts = x.firsts();
        SegmentFirst[] out = firsts;
        for (int f = 0; f < firsts.length; f++) {
            if (firsts[f] != null && firsts[f].ts() == event.ts() && firsts[f].type().equals(event.type())) {
                out = out == firsts ? firsts.clone() : out;
                out[f] = null;
                for (Event other : state.counted()) {
                    out[f] = earlier(out[f], other, f, x.tu(), x.end());
                }
            }
        }
        return out;
    }

    /** {@code first}, or {@code event} when it is in [tu, end), has field {@code f} and comes first. */
    private static SegmentFirst earlier(SegmentFirst first, Event event, int f, long tu, long end) {
        String value = event.seg(f);
        if (event.ts() < tu || event.ts() >= end || value == null) {
            return first;
        }
        return first == null || first.after(event.ts(), event.type())
                ? new SegmentFirst(event.ts(), event.type(), value)
                : first;
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
        for (Event event : state.counted()) {
            out.add(event.type());
        }
        out.add(type);
        return out;
    }

    /** The exposure's profiles of {@code types} and of their ratio partners (those it has). */
    private Map<String, Profile> profiles(State state, Exposure x, Collection<String> types)
            throws Exception {
        Map<String, Profile> out = new HashMap<>();
        List<String> wanted = new ArrayList<>(types);
        for (OperatorPlan.Pair pair : plan.pairsOf(x.experiment())) {
            if (pair.touches(types)) {
                wanted.add(pair.numerator());
                wanted.add(pair.denominator());
            }
        }
        for (String type : wanted) {
            if (!out.containsKey(type)) {
                Profile profile = state.profile(x, type);
                if (profile != null) {
                    out.put(type, profile);
                }
            }
        }
        return out;
    }

    // -- activations -----------------------------------------------------------------------

    private void onActivation(State state, Row input, boolean adds) throws Exception {
        String experiment = input.getFieldAs(IN_EXPERIMENT);
        String grp = input.getFieldAs(IN_GRP);
        long start = input.<Long>getFieldAs(IN_START);
        long end = input.<Long>getFieldAs(IN_END);
        String exposureKey = Exposure.key(experiment, grp, start, end);
        TreeMap<At, Integer> times = decodeTimes(state.activations.get(exposureKey));
        At activation = new At(input.<Long>getFieldAs(IN_TS), input.<Long>getFieldAs(IN_INTERVAL));
        Integer n = times.get(activation);
        if (n == null && !adds) {
            return; // the retraction of an activation never added: nothing holds it
        }
        int now = (n == null ? 0 : n) + (adds ? 1 : -1);
        if (now <= 0) {
            times.remove(activation);
        } else {
            times.put(activation, now);
        }
        if (times.isEmpty()) {
            state.activations.remove(exposureKey);
        } else {
            state.activations.put(exposureKey, encodeTimes(times));
        }
        List<Exposure> exposures = state.exposureList();
        int at = -1;
        for (int i = 0; i < exposures.size() && at < 0; i++) {
            if (exposures.get(i).key().equals(exposureKey)) {
                at = i;
            }
        }
        Exposure old = at < 0 ? null : exposures.get(at);
        At first = times.isEmpty() ? null : times.firstKey(); // the earliest activation left
        if (old != null && first != null && old.tu() == first.ts()
                && old.interval() == first.interval()) {
            return;
        }
        Long before = old == null ? null : old.tu();
        Long after = first == null ? null : first.ts();
        // The exposure's values are taken back whole and added again from its counted events
        // in [t_u, end); the series' events between the two t_u are added or taken back.
        SegmentFirst[] firsts = new SegmentFirst[plan.fields]; // found below
        Exposure x = new Exposure(experiment, grp, start, end, after == null ? end : after,
                first == null ? 0 : first.interval(), firsts);
        Contributions out = new Contributions(plan, x);
        List<Event> events = state.counted();
        Set<String> types = new LinkedHashSet<>();
        for (Event event : events) {
            types.add(event.type());
        }
        Map<String, Profile> was = Map.of();
        List<Exposure> previously = List.copyOf(exposures);
        if (old != null) {
            was = profiles(state, old, types);
            out.add(old, was, types, true, OtherGroups.of(exposures, old), -1);
            out.series("exposed", "", before, -1);
        }
        long lo = Math.min(before == null ? end : before, after == null ? end : after);
        long hi = Math.max(before == null ? end : before, after == null ? end : after);
        int sign = after != null && (before == null || after < before) ? 1 : -1;
        Map<String, Profile> profiles = new HashMap<>();
        for (Event event : events) {
            if (lo <= event.ts() && event.ts() < hi) {
                out.series("volume", event.type(), event.ts(), sign);
            }
            if (after != null && x.holds(event.ts())) {
                Profile p = profiles.computeIfAbsent(event.type(), t -> new Profile());
                p.add(event.ts() / DAY_MS, 1, event.valueOrZero());
                p.first = Math.min(p.first, event.ts());
                for (int f = 0; f < firsts.length; f++) {
                    firsts[f] = earlier(firsts[f], event, f, x.tu(), end);
                }
            } else if (after != null && precedes(x, event.ts())) {
                profiles.computeIfAbsent(event.type(), t -> new Profile())
                        .addPre(1, event.valueOrZero());
            }
        }
        for (String type : types) {
            Profile p = profiles.get(type);
            Profile w = was.get(type);
            propensity(out, type, w == null ? Profile.NONE : w.first, p == null ? Profile.NONE : p.first);
            if (p != null || w != null) {
                state.setProfile(x, type, p == null ? new Profile() : p);
            }
        }
        if (at >= 0) {
            exposures.remove(at);
        }
        if (after != null) {
            exposures.add(x);
            out.series("exposed", "", after, 1);
            out.add(x, profiles, types, true, OtherGroups.of(exposures, x), 1);
        }
        state.setExposures(exposures);
        out.emit(texts, this::collect);
        regrouped(state, previously, exposures, x, types);
    }

    /**
     * The user's other exposures of {@code x}'s experiment whose days in another group changed
     * with {@code x} (from {@code previously} to {@code exposures}): their values are taken back
     * and added again with the new days ({@link OtherGroups}).
     */
    private void regrouped(State state, List<Exposure> previously, List<Exposure> exposures,
            Exposure x, Set<String> types) throws Exception {
        for (Exposure y : exposures) {
            if (y == x || !y.experiment().equals(x.experiment()) || y.grp().equals(x.grp())) {
                continue;
            }
            OtherGroups was = OtherGroups.of(previously, y);
            OtherGroups now = OtherGroups.of(exposures, y);
            if (!was.equals(now)) {
                Contributions out = new Contributions(plan, y);
                Map<String, Profile> profiles = profiles(state, y, types);
                out.add(y, profiles, types, true, was, -1);
                out.add(y, profiles, types, true, now, 1);
                out.emit(texts, this::collect);
            }
        }
    }

    // -- keys and hours --------------------------------------------------------------------

    /** An activation's time and the start of the allocation interval it fell in. */
    record At(long ts, long interval) implements Comparable<At> {

        @Override
        public int compareTo(At o) {
            int c = Long.compare(ts, o.ts);
            return c != 0 ? c : Long.compare(interval, o.interval);
        }
    }

    /**
     * An exposure's activations and how many of each are held (a retraction takes one back;
     * a split interval re-sends an activation with its new interval, both held for a moment).
     */
    private static TreeMap<At, Integer> decodeTimes(byte[] data) {
        TreeMap<At, Integer> times = new TreeMap<>();
        if (data != null) {
            Codec.decode(data, in -> {
                for (int n = in.readInt(); n > 0; n--) {
                    times.put(new At(in.readLong(), in.readLong()), in.readInt());
                }
                return times;
            });
        }
        return times;
    }

    private static byte[] encodeTimes(TreeMap<At, Integer> times) {
        return Codec.encode(out -> {
            out.writeInt(times.size());
            times.forEach((t, n) -> {
                out.writeLong(t.ts());
                out.writeLong(t.interval());
                out.writeInt(n);
            });
        });
    }

    /** {@code (ts1, type1)} against {@code (ts2, type2)}: the cap's order, types by code point. */
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
}
