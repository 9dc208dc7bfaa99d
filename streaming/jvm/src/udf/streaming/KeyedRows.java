package udf.streaming;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.types.Row;

/**
 * A stream's rows with their key in front, {@code Row(key, row)}: the input PyFlink's keyed
 * functions take (its {@code key_by} makes it with a Python function, one crossing into the
 * interpreter per row). {@code key} is a {@code Row} of the fields at the given positions
 * ({@link Key}, which also keys a stream for a Java function); the row keeps its kind.
 */
public final class KeyedRows implements MapFunction<Row, Row> {

    private static final long serialVersionUID = 1L;

    private final Key key;

    /** {@code positions}: the key fields' positions, comma-separated ("0,4"). */
    public KeyedRows(String positions) {
        this.key = new Key(positions);
    }

    @Override
    public Row map(Row row) {
        return Row.of(key.getKey(row), row);
    }

    /** A row's key: a {@code Row} of its fields at the given positions. */
    public static final class Key implements KeySelector<Row, Row> {

        private static final long serialVersionUID = 1L;

        private final int[] positions;

        /** {@code positions}: the key fields' positions, comma-separated ("0,4"). */
        public Key(String positions) {
            String[] parts = positions.split(",");
            this.positions = new int[parts.length];
            for (int i = 0; i < parts.length; i++) {
                this.positions[i] = Integer.parseInt(parts[i].trim());
            }
        }

        @Override
        public Row getKey(Row row) {
            Row key = new Row(positions.length);
            for (int i = 0; i < positions.length; i++) {
                key.setField(i, row.getField(positions[i]));
            }
            return key;
        }
    }
}
