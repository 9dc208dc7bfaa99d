package udf.streaming;

import java.util.Collection;

import org.apache.flink.state.rocksdb.RocksDBOptionsFactory;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;

/**
 * RocksDB options for the pipeline's keyed state (Flink's {@code
 * state.backend.rocksdb.options-factory}, which {@code streaming/pipeline.py} sets unless
 * {@code stream.flink_conf} names another factory): a bloom filter of whole keys on every
 * memtable.
 *
 * <p>Most reads of the per-user operator look for a key that a recent write did not touch (a
 * user's new hour, a type's profile last written long ago): without a filter, each such read
 * searches the skip list of every memtable before it reaches the files, and that search was
 * the hottest code of a replay (an eighth of the process's CPU). With the filter, a memtable
 * that does not hold the key is passed over: in a profile the search fell to 7.5% of the
 * samples and the filters' checks took 1.5%; replay times changed within the machine's
 * spread (docs/benchmarks.md, "2026-12-05 (last)").
 *
 * <p>The filter takes {@link #RATIO} of a memtable's size, counted against the write buffers'
 * share of RocksDB's managed memory: 1.3 MB per 64 MB memtable, about 20 bits per entry. At
 * 0.1 the filters crowded the write buffers, which were flushed so often that a replay had
 * not ended after four times as long (most of its time flushing and compacting).
 */
public class MemtableFilters implements RocksDBOptionsFactory {

    private static final long serialVersionUID = 1L;

    /** The filter's size, as a fraction of the memtable's ({@code write_buffer_size}). */
    public static final double RATIO = 0.02;

    @Override
    public DBOptions createDBOptions(DBOptions current, Collection<AutoCloseable> handles) {
        return current;
    }

    @Override
    public ColumnFamilyOptions createColumnOptions(
            ColumnFamilyOptions current, Collection<AutoCloseable> handles) {
        return current.setMemtablePrefixBloomSizeRatio(RATIO).setMemtableWholeKeyFiltering(true);
    }
}
