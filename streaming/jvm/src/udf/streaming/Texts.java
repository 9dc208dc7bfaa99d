package udf.streaming;

import java.util.HashMap;
import java.util.Map;

import org.apache.flink.table.data.StringData;

/**
 * Text fields of the per-user operator's output as Flink's internal strings, each made once.
 *
 * <p>The operator emits a few rows per event, each with six text fields drawn from a small
 * set (experiments, groups, kinds, event types, segment values). Emitting Flink's internal
 * rows with cached strings skips the conversion of every {@code Row} and the UTF-8 encoding
 * of every field: a cached string keeps its bytes once they are made.
 */
final class Texts {

    static final int LIMIT = 100_000; // segment values may be many: start over past this

    private final Map<String, StringData> cache = new HashMap<>();

    StringData of(String text) {
        StringData data = cache.get(text);
        if (data == null) {
            if (cache.size() >= LIMIT) {
                cache.clear();
            }
            data = StringData.fromString(text);
            cache.put(text, data);
        }
        return data;
    }
}
