package udf.streaming;

import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.utils.LogicalTypeParser;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.OutputTag;

import udf.streaming.Contributions.Stat;

/**
 * The per-user operator's changes summed per key in its own thread, before they are shuffled
 * to the groups' sums (docs/streaming.md, "The per-user operator").
 *
 * <p>It does what SQL's local aggregation of a two-phase {@code SUM} does (a mini-batch's rows
 * summed per key, the sums sent on), for the operator's two readers at once and without
 * their steps: the projection that copies each row, the filters on {@code kind} and two
 * mini-batch bundles (docs/benchmarks.md, "2026-12-05 (night)"). The global sums after it
 * are planned in one phase.
 *
 * <p>Input: the operator's rows ({@link UserEvents#OUTPUT}), insert-only. Output: {@link #TOTALS}, the changes of the totals and of the
 * event types summed per key ({@code experiment} to {@code name}); and on the side output
 * {@link #seriesTag()}, {@link #SERIES}, the series' changes ({@code kind} {@code series_*})
 * summed per (experiment, group, period start, kind, name, bucket). A key's sums are sent
 * even when they add up to zero: the group then exists, as it would in a {@code SUM} of the
 * rows themselves.
 *
 * <p>The sums are sent every {@code intervalMs} (processing time: the mini-batch latency),
 * when {@code size} keys are held, before each checkpoint's barrier and at the end of the
 * input. So nothing is held across a checkpoint, and the operator has no state: a restart
 * from a checkpoint replays what came after it. A watermark is held with the sums and sent
 * after them (the last one, at the end of the input, at once): one that overtook them would
 * make them late, and the results sink flushes a key's last rows at the final watermark.
 */
public final class PreSums extends AbstractStreamOperator<RowData>
        implements OneInputStreamOperator<RowData, RowData> {

    private static final long serialVersionUID = 1L;

    /** The totals' and event types' sums: the operator's own columns. */
    public static final String TOTALS = UserEvents.OUTPUT;

    /** The series' sums. */
    public static final String SERIES = "ROW<experiment STRING NOT NULL, grp STRING NOT NULL,"
            + " period_start BIGINT NOT NULL, kind STRING NOT NULL, name STRING NOT NULL,"
            + " bucket BIGINT NOT NULL, n BIGINT>";

    // The operator's fields (UserEvents.OUTPUT).
    private static final int EXPERIMENT = 0, GRP = 1, START = 2, END = 3, D = 4, SEGMENT = 5,
            SV = 6, KIND = 7, NAME = 8, CNT = 9; // then the rest of a Stat (Contributions.emit)

    private final long intervalMs;
    private final int size;

    private transient Map<Total, Stat> totals;
    private transient Map<Series, long[]> series;
    private transient Texts texts;
    private transient OutputTag<RowData> seriesTag;
    private transient Watermark held; // the latest watermark, sent after the sums held with it

    /**
     * {@code intervalMs}: how often the sums are sent; {@code size}: how many keys it holds
     * at most. Strings, as the Python side constructs it.
     */
    public PreSums(String intervalMs, String size) {
        this.intervalMs = Long.parseLong(intervalMs);
        this.size = Integer.parseInt(size);
        if (this.intervalMs <= 0 || this.size <= 0) {
            throw new IllegalArgumentException("interval > 0 and size > 0, got "
                    + intervalMs + ", " + size);
        }
    }

    /** The type of the main output: {@link #TOTALS}. */
    public static TypeInformation<RowData> totalsType() {
        return InternalTypeInfo.of(rowType(TOTALS));
    }

    /** The side output of the series' sums: {@link #SERIES}. */
    public static OutputTag<RowData> seriesTag() {
        return new OutputTag<>("series", InternalTypeInfo.of(rowType(SERIES)));
    }

    private static RowType rowType(String text) {
        return (RowType) LogicalTypeParser.parse(text, PreSums.class.getClassLoader());
    }

    @Override
    public void open() throws Exception {
        super.open();
        totals = new HashMap<>();
        series = new HashMap<>();
        texts = new Texts();
        seriesTag = seriesTag();
        schedule();
    }

    private void schedule() {
        var time = getProcessingTimeService();
        time.registerTimer(time.getCurrentProcessingTime() + intervalMs, now -> {
            send();
            schedule();
        });
    }

    @Override
    public void processElement(StreamRecord<RowData> element) throws Exception {
        RowData row = element.getValue();
        if (row.getRowKind() != RowKind.INSERT) {
            throw new IllegalStateException(
                    "the per-user operator's rows are inserts, got " + row.getRowKind());
        }
        String kind = text(row, KIND);
        if (kind.startsWith(Contributions.SERIES)) {
            Series key = new Series(text(row, EXPERIMENT), text(row, GRP),
                    row.getLong(START), kind, text(row, NAME), row.getLong(D));
            series.computeIfAbsent(key, k -> new long[1])[0] += row.getLong(CNT);
        } else {
            Total key = new Total(text(row, EXPERIMENT), text(row, GRP),
                    row.getLong(START), row.getLong(END), row.getLong(D),
                    text(row, SEGMENT), text(row, SV), kind, text(row, NAME));
            totals.computeIfAbsent(key, k -> new Stat(0, 0, 0, 0.0, 0.0)).addColumns(row, CNT);
        }
        if (totals.size() + series.size() >= size) {
            send();
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        held = mark;
        if (mark.getTimestamp() == Watermark.MAX_WATERMARK.getTimestamp()) {
            send();
        }
    }

    /** Send every sum held (before the barrier: a checkpoint holds none). */
    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        send();
    }

    @Override
    public void finish() throws Exception {
        send();
        super.finish();
    }

    /** Send the sums held, then the watermark held with them. */
    private void send() throws Exception {
        for (Map.Entry<Total, Stat> e : totals.entrySet()) {
            Total k = e.getKey();
            Stat s = e.getValue();
            output.collect(new StreamRecord<>(GenericRowData.of(texts.of(k.experiment),
                    texts.of(k.grp), k.start, k.end, k.d, texts.of(k.segment), texts.of(k.sv),
                    texts.of(k.kind), texts.of(k.name), s.cnt, s.users, s.sq, s.vsum, s.vsq,
                    s.nonzero)));
        }
        for (Map.Entry<Series, long[]> e : series.entrySet()) {
            Series k = e.getKey();
            output.collect(seriesTag, new StreamRecord<>(GenericRowData.of(texts.of(k.experiment),
                    texts.of(k.grp), k.start, texts.of(k.kind), texts.of(k.name), k.bucket,
                    e.getValue()[0])));
        }
        totals.clear();
        series.clear();
        if (held != null) {
            Watermark mark = held;
            held = null;
            super.processWatermark(mark);
        }
    }

    /**
     * A text field as a Java string. The operator's text fields are strings it made once
     * ({@link Texts}), each with its Java string: the keys compare and hash those (the hash is
     * kept in the string, and equal texts are mostly the same string), where Flink's strings
     * would hash and compare their bytes every time.
     */
    private static String text(RowData row, int field) {
        return row.getString(field).toString();
    }

    private record Total(String experiment, String grp, long start, long end, long d,
            String segment, String sv, String kind, String name) {}

    private record Series(String experiment, String grp, long start, String kind, String name,
            long bucket) {}

}
