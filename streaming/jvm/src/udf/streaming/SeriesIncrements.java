package udf.streaming;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.TimeDomain;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.Collector;

/**
 * The 15-minute series' per-bucket counts, gathered per (experiment, group, period start) and
 * passed on whole when that series is due for a write (docs/streaming.md, "The series").
 *
 * <p>Input: the upserts of SQL's sums by {@code (experiment, grp, period_start, kind, name,
 * bucket)}, with {@code n} last (aggregation.SERIES_COLUMNS), keyed by the series' key, {@code
 * Row(experiment, grp, period_start)} ({@code KeyedRows.Key}: streaming.pipeline). Keyed state
 * holds each series' counts. A series that changes is written {@code flushMs} after its first
 * change, and when a bounded input ends (the event-time timer at {@code endOfInput}, which
 * only the final watermark reaches). Output, one row per write: {@code (experiment, grp,
 * period_start, kinds, names, buckets, counts)}, the series' counts as four arrays in the
 * same order, for the Python sink that makes the cumulative points and writes them
 * (streaming/functions/series_sink.py).
 *
 * <p>Its input is about one record per event type and bucket each time SQL's mini-batches
 * close, hundreds of thousands in a replay: here they stay in the JVM, and Python gets one
 * record per write. Which series have a timer, and which are unchanged since their last
 * write, is kept in memory, not in keyed state: after a restore every series counts as
 * changed until it is written again, and the restored timers write it.
 */
public class SeriesIncrements extends KeyedProcessFunction<Row, Row, Row> {

    private static final long serialVersionUID = 1L;

    private final long flushMs;
    private final long endOfInput;
    /** Input field positions of a count's own columns, as the caller names them. */
    private final int kindAt, nameAt, bucketAt, nAt;
    private transient MapState<String, Long> counts;
    private transient Set<Row> timed; // series with a write timer
    private transient Set<Row> clean; // series unchanged since written

    /**
     * {@code flushMs}: how long after its first change a series is written; {@code counts}:
     * the input positions of a count's kind, name, bucket and value, comma-separated.
     */
    public SeriesIncrements(String flushMs, String endOfInput, String counts) {
        this.flushMs = Long.parseLong(flushMs);
        this.endOfInput = Long.parseLong(endOfInput);
        String[] at = counts.split(",");
        if (at.length != 4) {
            throw new IllegalArgumentException("4 positions (kind, name, bucket, n): " + counts);
        }
        this.kindAt = Integer.parseInt(at[0].trim());
        this.nameAt = Integer.parseInt(at[1].trim());
        this.bucketAt = Integer.parseInt(at[2].trim());
        this.nAt = Integer.parseInt(at[3].trim());
    }

    @Override
    public void open(OpenContext context) {
        counts = getRuntimeContext().getMapState(
                new MapStateDescriptor<>("counts", Types.STRING, Types.LONG));
        timed = new HashSet<>();
        clean = new HashSet<>();
    }

    @Override
    public void processElement(Row row, Context ctx, Collector<Row> out) throws Exception {
        // The name last: a name may hold any character, the kind and the bucket no line break.
        String count = row.getFieldAs(kindAt) + "\n" + row.<Long>getFieldAs(bucketAt) + "\n"
                + row.getFieldAs(nameAt);
        RowKind kind = row.getKind();
        if (kind == RowKind.INSERT || kind == RowKind.UPDATE_AFTER) {
            counts.put(count, row.getFieldAs(nAt));
        } else {
            counts.remove(count);
        }
        Row series = ctx.getCurrentKey();
        clean.remove(series);
        if (timed.add(series)) {
            long now = ctx.timerService().currentProcessingTime();
            ctx.timerService().registerProcessingTimeTimer(now + flushMs);
            ctx.timerService().registerEventTimeTimer(endOfInput);
        }
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> out) throws Exception {
        Row series = ctx.getCurrentKey();
        if (ctx.timeDomain() == TimeDomain.PROCESSING_TIME) {
            timed.remove(series);
        }
        if (!clean.add(series)) {
            return;
        }
        List<String> kinds = new ArrayList<>();
        List<String> names = new ArrayList<>();
        List<Long> buckets = new ArrayList<>();
        List<Long> values = new ArrayList<>();
        for (Map.Entry<String, Long> e : counts.entries()) {
            String count = e.getKey();
            int first = count.indexOf('\n');
            int second = count.indexOf('\n', first + 1);
            kinds.add(count.substring(0, first));
            buckets.add(Long.parseLong(count.substring(first + 1, second)));
            names.add(count.substring(second + 1));
            values.add(e.getValue());
        }
        out.collect(Row.of(series.getField(0), series.getField(1), series.getField(2),
                kinds.toArray(new String[0]), names.toArray(new String[0]),
                buckets.toArray(new Long[0]), values.toArray(new Long[0])));
    }
}
