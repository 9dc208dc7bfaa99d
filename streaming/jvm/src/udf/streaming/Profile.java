package udf.streaming;

import java.util.Arrays;

/**
 * One exposure's counted events of one type: per day (days since the epoch, ascending) their
 * number and the sum of their {@code value}, and the first one's time (for the series'
 * propensity). The per-user operator keeps one per (exposure, type) in its state.
 */
final class Profile {

    static final long NONE = Long.MAX_VALUE; // no first event

    long first = NONE;
    long[] days = new long[0];
    long[] counts = new long[0];
    double[] sums = new double[0];

    static Profile decode(byte[] data) {
        if (data == null) {
            return new Profile();
        }
        return Codec.decode(data, in -> {
            Profile p = new Profile();
            p.first = in.readLong();
            int n = in.readInt();
            p.days = new long[n];
            p.counts = new long[n];
            p.sums = new double[n];
            for (int i = 0; i < n; i++) {
                p.days[i] = in.readLong();
                p.counts[i] = in.readLong();
                p.sums[i] = in.readDouble();
            }
            return p;
        });
    }

    byte[] encode() {
        return Codec.encode(out -> {
            out.writeLong(first);
            out.writeInt(days.length);
            for (int i = 0; i < days.length; i++) {
                out.writeLong(days[i]);
                out.writeLong(counts[i]);
                out.writeDouble(sums[i]);
            }
        });
    }

    boolean isEmpty() {
        return days.length == 0;
    }

    /** Add ({@code sign} 1) or take away (-1) an event of {@code day}; a day left without events goes. */
    void add(long day, int sign, double value) {
        int at = Arrays.binarySearch(days, day);
        if (at < 0) {
            if (sign < 0) {
                throw new IllegalStateException("no event of day " + day + " to take away");
            }
            at = -at - 1;
            days = insert(days, at, day);
            counts = insert(counts, at, 0L);
            sums = insert(sums, at, 0.0);
        }
        counts[at] += sign;
        sums[at] += sign * value;
        if (counts[at] == 0) {
            days = remove(days, at);
            counts = remove(counts, at);
            sums = remove(sums, at);
        }
    }

    long countThrough(long day) {
        long n = 0;
        for (int i = 0; i < days.length && days[i] <= day; i++) {
            n += counts[i];
        }
        return n;
    }

    double sumThrough(long day) {
        double s = 0.0;
        for (int i = 0; i < days.length && days[i] <= day; i++) {
            s += sums[i];
        }
        return s;
    }

    private static long[] insert(long[] a, int at, long v) {
        long[] out = new long[a.length + 1];
        System.arraycopy(a, 0, out, 0, at);
        out[at] = v;
        System.arraycopy(a, at, out, at + 1, a.length - at);
        return out;
    }

    private static double[] insert(double[] a, int at, double v) {
        double[] out = new double[a.length + 1];
        System.arraycopy(a, 0, out, 0, at);
        out[at] = v;
        System.arraycopy(a, at, out, at + 1, a.length - at);
        return out;
    }

    private static long[] remove(long[] a, int at) {
        long[] out = new long[a.length - 1];
        System.arraycopy(a, 0, out, 0, at);
        System.arraycopy(a, at + 1, out, at, a.length - at - 1);
        return out;
    }

    private static double[] remove(double[] a, int at) {
        double[] out = new double[a.length - 1];
        System.arraycopy(a, 0, out, 0, at);
        System.arraycopy(a, at + 1, out, at, a.length - at - 1);
        return out;
    }
}
