package udf.streaming;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One exposure's counted events of one type: per day (days since the epoch, ascending) their
 * number and the sum of their {@code value}, and the first one's time (for the series'
 * propensity); and, for an experiment with CUPED, the covariate: the number and the sum of
 * {@code value} of the user's counted events of the type in {@code [t_u - P, t_u)}
 * (docs/metrics.md §8.4). The per-user operator keeps the profiles of one type, of every
 * exposure, in one state entry.
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
    long preCount;
    double preSum;

    /** Profiles by exposure key, as the operator keeps those of one type: in one entry. */
    static Map<String, Profile> decodeAll(byte[] data) {
        Map<String, Profile> out = new LinkedHashMap<>();
        if (data != null) {
            Codec.decode(data, in -> {
                for (int n = in.readInt(); n > 0; n--) {
                    out.put(in.readUTF(), read(in));
                }
                return out;
            });
        }
        return out;
    }

    static byte[] encodeAll(Map<String, Profile> profiles) {
        return Codec.encode(out -> {
            out.writeInt(profiles.size());
            profiles.forEach((key, profile) -> {
                out.writeUTF(key);
                profile.write(out);
            });
        });
    }

    private static Profile read(Codec.Input in) {
        Profile p = new Profile();
        p.first = in.readLong();
        int n = in.readInt();
        for (int i = 0; i < n; i++) {
            p.days.add(new Day(in.readLong(), in.readLong(), in.readDouble()));
        }
        p.preCount = in.readLong();
        p.preSum = in.readDouble();
        return p;
    }

    private void write(Codec.Output out) {
        out.writeLong(first);
        out.writeInt(days.size());
        for (Day d : days) {
            out.writeLong(d.day);
            out.writeLong(d.count);
            out.writeDouble(d.sum);
        }
        out.writeLong(preCount);
        out.writeDouble(preSum);
    }

    boolean isEmpty() {
        return days.isEmpty() && preCount == 0;
    }

    /** Add ({@code sign} 1) or take away (-1) an event of the covariate's window. */
    void addPre(int sign, double value) {
        preCount += sign;
        preSum = preCount == 0 ? 0.0 : preSum + sign * value; // none left: exactly 0
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
