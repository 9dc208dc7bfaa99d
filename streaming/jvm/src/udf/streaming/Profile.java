package udf.streaming;

import java.util.ArrayList;
import java.util.List;

/**
 * One exposure's counted events of one type: per day (days since the epoch, ascending) their
 * number and the sum of their {@code value}, and the first one's time (for the series'
 * propensity). The per-user operator keeps one per (exposure, type) in its state.
 */
final class Profile {

    static final long NONE = Long.MAX_VALUE; // no first event

    /** One day's counted events: their number and the sum of their {@code value}. */
    static final class Day {
        final long day;
        long count;
        double sum;

        Day(long day, long count, double sum) {
            this.day = day;
            this.count = count;
            this.sum = sum;
        }
    }

    long first = NONE;
    final List<Day> days = new ArrayList<>(4);

    static Profile decode(byte[] data) {
        if (data == null) {
            return new Profile();
        }
        return Codec.decode(data, in -> {
            Profile p = new Profile();
            p.first = in.readLong();
            int n = in.readInt();
            for (int i = 0; i < n; i++) {
                p.days.add(new Day(in.readLong(), in.readLong(), in.readDouble()));
            }
            return p;
        });
    }

    byte[] encode() {
        return Codec.encode(out -> {
            out.writeLong(first);
            out.writeInt(days.size());
            for (Day d : days) {
                out.writeLong(d.day);
                out.writeLong(d.count);
                out.writeDouble(d.sum);
            }
        });
    }

    boolean isEmpty() {
        return days.isEmpty();
    }

    /** Add ({@code sign} 1) or take away (-1) an event of {@code day}; a day left without events goes. */
    void add(long day, int sign, double value) {
        int at = 0;
        while (at < days.size() && days.get(at).day < day) {
            at++;
        }
        if (at == days.size() || days.get(at).day != day) {
            if (sign < 0) {
                throw new IllegalStateException("no event of day " + day + " to take away");
            }
            days.add(at, new Day(day, 0, 0.0));
        }
        Day d = days.get(at);
        d.count += sign;
        d.sum += sign * value;
        if (d.count == 0) {
            days.remove(at);
        }
    }

    long countThrough(long day) {
        long n = 0;
        for (int i = 0; i < days.size() && days.get(i).day <= day; i++) {
            n += days.get(i).count;
        }
        return n;
    }

    double sumThrough(long day) {
        double s = 0.0;
        for (int i = 0; i < days.size() && days.get(i).day <= day; i++) {
            s += days.get(i).sum;
        }
        return s;
    }
}
