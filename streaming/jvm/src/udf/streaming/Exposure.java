package udf.streaming;

import java.util.ArrayList;
import java.util.List;

import udf.streaming.Contributions.SegmentFirst;

/**
 * One exposure of a user: (experiment, group, period), its first trigger time {@code tu}, the
 * start of the allocation interval {@code tu} fell in ({@code interval}, for the SRM check)
 * and, per segment field, the first counted event in it that has the field ({@code null}:
 * none); and its {@code key} in state keys, made once (an event looks up its profiles by it).
 */
record Exposure(String experiment, String grp, long start, long end, long tu, long interval,
        SegmentFirst[] firsts, String key) {

    Exposure(String experiment, String grp, long start, long end, long tu, long interval,
            SegmentFirst[] firsts) {
        this(experiment, grp, start, end, tu, interval, firsts, key(experiment, grp, start, end));
    }

    /** The key of an exposure in state keys (names hold no NUL). */
    static String key(String experiment, String grp, long start, long end) {
        return experiment + "\0" + grp + "\0" + start + "\0" + end;
    }

    boolean holds(long ts) {
        return tu <= ts && ts < end;
    }

    Exposure with(SegmentFirst[] firsts) {
        return new Exposure(experiment, grp, start, end, tu, interval, firsts, key);
    }

    static byte[] encode(List<Exposure> list) {
        return Codec.encode(out -> {
            out.writeInt(list.size());
            for (Exposure x : list) {
                out.writeUTF(x.experiment);
                out.writeUTF(x.grp);
                out.writeLong(x.start);
                out.writeLong(x.end);
                out.writeLong(x.tu);
                out.writeLong(x.interval);
                out.writeInt(x.firsts.length);
                for (SegmentFirst f : x.firsts) {
                    writeFirst(out, f);
                }
            }
        });
    }

    static List<Exposure> decode(byte[] data) {
        if (data == null) {
            return new ArrayList<>();
        }
        return Codec.decode(data, in -> {
            int n = in.readInt();
            List<Exposure> list = new ArrayList<>(n + 1);
            for (int i = 0; i < n; i++) {
                String experiment = in.readUTF();
                String grp = in.readUTF();
                long start = in.readLong();
                long end = in.readLong();
                long tu = in.readLong();
                long interval = in.readLong();
                SegmentFirst[] firsts = new SegmentFirst[in.readInt()];
                for (int f = 0; f < firsts.length; f++) {
                    firsts[f] = readFirst(in);
                }
                list.add(new Exposure(experiment, grp, start, end, tu, interval, firsts));
            }
            return list;
        });
    }

    private static void writeFirst(Codec.Output out, SegmentFirst first) {
        out.writeBoolean(first != null);
        if (first != null) {
            out.writeLong(first.ts());
            out.writeUTF(first.type());
            out.writeUTF(first.value());
        }
    }

    private static SegmentFirst readFirst(Codec.Input in) {
        return in.readBoolean() ? new SegmentFirst(in.readLong(), in.readUTF(), in.readUTF()) : null;
    }
}
