package udf.streaming;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;

/**
 * The days on which a user, in one exposure, is also exposed to another group of the same
 * experiment: batch's {@code multi} flag of the exposure's row on each day
 * ({@code metric_types.semantics.with_multi}, docs/metrics.md §14).
 *
 * <p>On day {@code D}, batch's slice holds an exposure when its period is active on {@code D}
 * and its {@code t_u} comes before {@code D}'s end: from the day of {@code t_u} through the
 * period's last day, {@code (end - 1) / DAY_MS}. A user is {@code multi} on {@code D} when the
 * exposures of the experiment held on {@code D} span two or more groups. On a day the
 * exposure itself is held, that is: another exposure of another group is held too. The days
 * are kept as the union of those other exposures' day ranges, as sorted, disjoint, inclusive
 * ranges {@code [from[i], to[i]]}.
 */
final class OtherGroups {

    static final OtherGroups NONE = new OtherGroups(new long[0], new long[0]);

    private final long[] from;
    private final long[] to;

    private OtherGroups(long[] from, long[] to) {
        this.from = from;
        this.to = to;
    }

    /** The days {@code x}'s user, with {@code exposures}, is in another group of its experiment. */
    static OtherGroups of(List<Exposure> exposures, Exposure x) {
        List<long[]> ranges = null;
        for (Exposure y : exposures) {
            if (y.experiment().equals(x.experiment()) && !y.grp().equals(x.grp())) {
                if (ranges == null) {
                    ranges = new ArrayList<>(2);
                }
                long day = Contributions.DAY_MS;
                ranges.add(new long[] {y.tu() / day, (y.end() - 1) / day});
            }
        }
        if (ranges == null) {
            return NONE;
        }
        ranges.sort((a, b) -> Long.compare(a[0], b[0]));
        long[] from = new long[ranges.size()];
        long[] to = new long[ranges.size()];
        int n = 0;
        for (long[] r : ranges) {
            if (n > 0 && r[0] <= to[n - 1] + 1) { // touches or overlaps the last: one range
                to[n - 1] = Math.max(to[n - 1], r[1]);
            } else {
                from[n] = r[0];
                to[n] = r[1];
                n++;
            }
        }
        return new OtherGroups(Arrays.copyOf(from, n), Arrays.copyOf(to, n));
    }

    boolean isEmpty() {
        return from.length == 0;
    }

    /** Whether the user is in another group on {@code day}. */
    boolean on(long day) {
        for (int i = 0; i < from.length && from[i] <= day; i++) {
            if (day <= to[i]) {
                return true;
            }
        }
        return false;
    }

    /** Add the days from {@code first} through {@code last} where {@link #on} changes. */
    void addChanges(TreeSet<Long> days, long first, long last) {
        for (int i = 0; i < from.length; i++) {
            if (first <= from[i] && from[i] <= last) {
                days.add(from[i]);
            }
            if (first <= to[i] + 1 && to[i] + 1 <= last) {
                days.add(to[i] + 1);
            }
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof OtherGroups other && Arrays.equals(from, other.from)
                && Arrays.equals(to, other.to);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(from) + Arrays.hashCode(to);
    }
}
