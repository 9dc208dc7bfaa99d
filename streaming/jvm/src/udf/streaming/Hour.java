package udf.streaming;

import java.util.Arrays;

/**
 * A user's counted events of one clock hour, as the per-user operator keeps them: their
 * number, then each event ({@link Event#write}), in the cap's order {@code (ts, type)}, types
 * by code point. An event in order only needs where it goes and the bytes around it, so the
 * hour is read where each event starts and what its time and type are, and its bytes are
 * spliced, not decoded into events and encoded again.
 */
final class Hour {

    private final byte[] data;
    private final int[] starts; // where each event starts, then the end

    private Hour(byte[] data, int[] starts) {
        this.data = data;
        this.starts = starts;
    }

    private static final byte[] NONE = new byte[4]; // no events: their number, 0

    /** The hour of a state entry ({@code null}: no events). */
    static Hour of(byte[] data) {
        if (data == null) {
            data = NONE;
        }
        Codec.Input in = new Codec.Input(data);
        int[] starts = new int[in.readInt() + 1];
        for (int i = 0; i < starts.length - 1; i++) {
            starts[i] = in.position();
            Event.skip(in);
        }
        starts[starts.length - 1] = in.position();
        return new Hour(data, starts);
    }

    int size() {
        return starts.length - 1;
    }

    /** The events, decoded. */
    Event[] events() {
        Event[] out = new Event[size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = event(i);
        }
        return out;
    }

    Event event(int i) {
        return Event.read(new Codec.Input(data, starts[i]));
    }

    /**
     * Where an event of {@code ts} and {@code type} (its UTF-8 bytes: their order is the code
     * points') goes in the hour, in order; -1 when the hour holds it already.
     */
    int position(long ts, byte[] type) {
        int lo = 0;
        int hi = size();
        if (hi > 0 && compare(hi - 1, ts, type) < 0) {
            return hi; // in order: after the last
        }
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            int c = compare(mid, ts, type);
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

    /** Event {@code i} against {@code (ts, type)}. */
    private int compare(int i, long ts, byte[] type) {
        Codec.Input in = new Codec.Input(data, starts[i]);
        int length = in.readInt();
        int at = in.position();
        in.skip(length);
        int c = Long.compare(in.readLong(), ts);
        return c != 0 ? c : Arrays.compareUnsigned(data, at, at + length, type, 0, type.length);
    }

    /**
     * The hour's entry with {@code event} (encoded) put at {@code at}, keeping the first
     * {@code cap} events: the last drops out when the hour held {@code cap} already.
     */
    byte[] with(int at, byte[] event, int cap) {
        int kept = Math.min(size(), cap - 1); // the old events that stay
        int head = starts[at] - starts[0];
        int tail = starts[kept] - starts[at];
        Codec.Output out = new Codec.Output(4 + head + event.length + tail);
        out.writeInt(kept + 1);
        out.write(data, starts[0], head);
        out.write(event, 0, event.length);
        out.write(data, starts[at], tail);
        return out.toByteArray();
    }
}
