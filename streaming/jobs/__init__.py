"""The pipeline's jobs, one module each, as the seed splits them (docs/streaming.md).

Every job has ``build(t_env, source, sink, plan)``: ``source`` names its input streams
(tables or views) and ``sink`` publishes each of its output streams under a name. Locally
the jobs run as one Flink pipeline and :func:`local_sink` hands a stream to the next job
through a DataStream (the role the seed's intermediate Kafka topics play between its jobs).
With ``stream.topics`` the jobs run apart: :func:`topic_sink` inserts the streams that cross
to the next job into their Kafka topics (:mod:`streaming.topics`), and that job reads them
under the same names (:func:`read_topics`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class Sink(Protocol):
    def __call__(
        self,
        name: str,
        query: str,
        *,
        changelog: bool = True,
        one_reader: bool = False,
        key: Sequence[str] = (),
    ) -> None:
        """Publish the result of ``query`` as stream ``name`` (``changelog``: it may update;
        ``one_reader``: one query reads it; ``key``: its unique key, columns that are never
        null, and it is published as upserts by that key)."""


def local_sink(t_env: Any) -> Sink:
    """Publish streams as views backed by a DataStream.

    Going through a DataStream (``to_changelog_stream`` and back) matters: every later
    consumer of the view starts from that one stream. A plain view would be planned anew by
    each Table → DataStream conversion that reads it (the sinks are several), and its
    sources would be read and its joins computed once per consumer. Insert-only streams stay
    insert-only (a DataStream of Flink's internal rows: :func:`_internal_hop`), which the
    dead-letter file sink needs; they get a processing-time attribute ``proc``.

    A stream with one reader is a plain view: planned once all the same, and its rows are not
    converted to a DataStream's and back (twice per event for the filtered topics).

    A stream with a key goes through the DataStream as upserts: an update is one +U, without
    the -U before it, and a reader converting it to upserts by the same key gets it as it is
    (:func:`streaming.pipeline.upserts`; through a plain changelog the key is lost, and the
    -U with it could not be dropped).

    A changelog keeps each key's order only along one path: a stream must come from an
    operator running at the default parallelism and keyed by its key (every SQL aggregation,
    join and Top-N is), not from a global aggregate running on one subtask.
    """
    from pyflink.table import ChangelogMode

    def publish(
        name: str,
        query: str,
        *,
        changelog: bool = True,
        one_reader: bool = False,
        key: Sequence[str] = (),
    ) -> None:
        table = t_env.sql_query(query)
        if one_reader:
            view = table
        elif key:
            view = t_env.from_changelog_stream(upsert_stream(t_env, table, key),
                                               _keyed(key), ChangelogMode.upsert())  # fmt: skip
        elif changelog:
            view = t_env.from_changelog_stream(t_env.to_changelog_stream(table))
        else:
            view = _internal_hop(t_env, table)
        t_env.create_temporary_view(name, view)

    return publish


def topic_sink(t_env: Any, topics: Any, statements: Any, written: dict[str, Any]) -> Sink:
    """Publish the streams that cross to the next job (:data:`streaming.topics.STREAMS`) into
    their topics (``topics``: :class:`streaming.topics.Topics`), as inserts of ``statements``;
    the others as :func:`local_sink` does. ``written`` gets each crossing stream's columns,
    with which the reading job declares its table."""
    from streaming.topics import STREAMS, schema

    local = local_sink(t_env)

    def publish(
        name: str,
        query: str,
        *,
        changelog: bool = True,
        one_reader: bool = False,
        key: Sequence[str] = (),
    ) -> None:
        if name not in STREAMS:
            local(name, query, changelog=changelog, one_reader=one_reader, key=key)
            return
        table = t_env.sql_query(query)
        written[name] = schema(table)
        t_env.execute_sql(topics.ddl(name, written[name], writing=True))
        statements.add_insert(name, table)

    return publish


def read_topics(t_env: Any, topics: Any, columns: dict[str, Any]) -> None:
    """Register the streams the filter jobs publish (``columns``: each one's, as
    :func:`topic_sink` found them) as tables of their topics, under their names."""
    for name, fields in columns.items():
        t_env.execute_sql(topics.ddl(name, fields, writing=False))


def _internal_hop(t_env: Any, table: Any) -> Any:
    """Insert-only ``table`` through a DataStream of Flink's internal rows, with a
    processing-time attribute ``proc``.

    PyFlink's ``to_data_stream`` and ``from_data_stream`` convert every row to a ``Row`` and
    back (each text field decoded from UTF-8 and encoded again); a stream of ``RowData``
    (the table's row type bridged to it, through the Java API) passes the rows as they are.
    """
    from pyflink.table import Schema, Table

    schema = Schema.new_builder().column_by_expression("proc", "PROCTIME()").build()
    return Table(t_env._j_tenv.fromDataStream(internal_rows(t_env, table), schema._j_schema), t_env)


def internal_rows(t_env: Any, table: Any) -> Any:
    """Insert-only ``table`` as a Java DataStream of Flink's internal rows (``RowData``),
    the table's row type bridged to it: no conversion to ``Row`` and back."""
    from pyflink.java_gateway import get_gateway

    j_table = table._j_table
    row_data = get_gateway().jvm.java.lang.Class.forName("org.apache.flink.table.data.RowData")
    internal = j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(row_data)
    return t_env._j_tenv.toDataStream(j_table, internal)


def upsert_stream(t_env: Any, table: Any, key: Sequence[str]) -> Any:
    """``table`` as a DataStream of upserts by ``key`` (its unique key, never-null columns):
    inserts, updates (+U, no -U before them) and deletes."""
    from pyflink.table import ChangelogMode

    return t_env.to_changelog_stream(table, _keyed(key), ChangelogMode.upsert())


def _keyed(key: Sequence[str]) -> Any:
    from pyflink.table import Schema

    return Schema.new_builder().primary_key(*key).build()


def unset_only(config: Any, options: dict[str, str]) -> dict[str, str]:
    """Those of ``options`` that the table configuration ``config`` does not hold: the
    pipeline's defaults yield to ``stream.flink_conf``, which is in the configuration first
    (the table configuration reads the job's)."""
    return {key: value for key, value in options.items() if config.get(key, None) is None}


@contextmanager
def planned_with(t_env: Any, options: dict[str, str]) -> Iterator[None]:
    """Plan the streams published inside with these table ``options`` (the rest keep theirs).

    A stream is planned when it is published (:func:`local_sink` converts it to a DataStream
    at once), with the table configuration of that moment.
    """
    config = t_env.get_config()
    before = {key: config.get(key, None) for key in options}
    for key, value in options.items():
        config.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                config.get_configuration().remove_config(key)
            else:
                config.set(key, value)


def with_mini_batches(t_env: Any, latency_ms: int, size: int) -> AbstractContextManager[None]:
    """Plan the streams published inside with mini-batches of this latency and size."""
    return planned_with(t_env, {
        "table.exec.mini-batch.allow-latency": f"{latency_ms}ms",
        "table.exec.mini-batch.size": str(size),
    })  # fmt: skip
