"""One Flink pipeline from the jobs: the environment, the jobs wired together, the sinks.

:func:`environment` sets everything by configuration (PyFlink 2.3 has no
``set_state_backend``): RocksDB with incremental checkpoints retained on cancellation,
restore from a given checkpoint, mini-batched SQL aggregation (it turns the changelog's
-D/+I flapping into -U/+U and cuts it severalfold), Python functions in thread mode, and a
state TTL for runs. :func:`build` registers the source, the three jobs, the dead letters
and the two Python sinks; the caller executes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streaming import jvm
from streaming.jobs import (
    Sink,
    aggregation,
    filter_activations,
    filter_events,
    local_sink,
    read_topics,
    topic_sink,
    unset_only,
    upsert_stream,
)
from streaming.jobs.aggregation import KEY, SERIES_COLUMNS, SERIES_KEY, TOTAL_COLUMNS
from streaming.plan import StreamPlan
from streaming.sources import Source, SourceTables
from streaming.topics import Topics
from udf.home import Home


@dataclass(frozen=True)
class PipelineConfig:
    # The home, with the metadata store the sinks write to as the submitting command resolved
    # it (an Airflow task's connection, $UDF_METADATA_URL): not a TaskManager's environment.
    home: Home
    settings: Any  # udf.settings.Settings
    checkpoints: Path
    deadletters: Path
    progress: Path
    series_url: str
    max_days: int
    restore: str | None = None
    follow: bool = False  # a run (unbounded), not a replay
    state_ttl_ms: int | None = None
    on_rows: str | None = None
    cluster_conf: dict[str, str] | None = None  # submit to a session cluster (streaming.cluster)
    jars: tuple[str, ...] = ()  # e.g. the Kafka connector's, for a unified source's live tail


def share_python_path() -> None:
    """Let Python functions in thread mode see this interpreter's packages. They run in an
    interpreter embedded in PyFlink's JVM, which does not see this virtual environment: the
    JVM, started once per process on first use, inherits ``PYTHONPATH``."""
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


def start_jvm(options: str) -> None:
    """Start PyFlink's JVM, where a local job runs, with ``options`` (``stream.jvm_options``).
    It starts once per process, on first use, with the options in ``JVM_ARGS``: those set in
    the environment win, and a JVM already started keeps its own. Set only while it starts,
    so that no program this process starts later gets them."""
    from pyflink.java_gateway import get_gateway

    if "JVM_ARGS" in os.environ:
        get_gateway()
        return
    os.environ["JVM_ARGS"] = options
    try:
        get_gateway()
    finally:
        del os.environ["JVM_ARGS"]


def environment(cfg: PipelineConfig) -> tuple[Any, Any]:
    """A streaming execution environment and its table environment, configured."""
    share_python_path()
    start_jvm(cfg.settings.stream.jvm_options)
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    s = cfg.settings.stream
    conf = Configuration()
    options = {
        "parallelism.default": str(s.parallelism),
        "state.backend.type": s.state_backend,
        "execution.checkpointing.incremental": "true",
        "pipeline.object-reuse": "true",
        "execution.checkpointing.interval": f"{round(s.checkpoint_interval_seconds * 1000)}ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": cfg.checkpoints.absolute().as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "2",
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.execution-mode": s.python_mode,
        "pipeline.name": "udf stream",
        # many small exchanges (every SQL stage is keyed): more buffers than the default
        "taskmanager.memory.network.min": "256mb",
        "taskmanager.memory.network.max": "256mb",
        "taskmanager.memory.managed.size": s.state_memory,  # RocksDB's cache and buffers
        # Most state reads look for a key that is not there yet (a new event, user or value):
        # bloom filters answer those without reading blocks, and uncompressed blocks skip the
        # codec on every read and write. A 2 M-event replay took about a fifth less time
        # (docs/benchmarks.md, "RocksDB's bloom filters").
        "state.backend.rocksdb.use-bloom-filter": "true",
        "state.backend.rocksdb.compression.per.level": "NO_COMPRESSION",
        # The same for the memtables, which every read searches first (MemtableFilters.java,
        # docs/benchmarks.md, "2026-12-05 (last)"). The class ships in the functions' jar.
        "state.backend.rocksdb.options-factory": jvm.ROCKSDB_OPTIONS,
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(s.restart_attempts),
        "restart-strategy.fixed-delay.delay": "1s",
    }
    if cfg.restore:
        options["execution.state-recovery.path"] = cfg.restore
    options.update(cfg.cluster_conf or {})
    # Before the table environment exists: its class loader is made with it. The functions'
    # jar ships with every job: the sinks' key selector (streaming.pipeline.key_by) is a
    # DataStream function, which USING JAR (the SQL functions') does not reach.
    options["pipeline.jars"] = ";".join([jvm.functions_jar().as_uri(), *cfg.jars])
    options.update(s.flink_conf)
    for key, value in options.items():
        conf.set_string(key, value)
    if options.get("execution.target", "local") != "local":
        # --cluster, or execution.target in flink_conf (the docker stack's): submitted there.
        # get_execution_environment would make a local environment, target "local" whatever
        # the configuration says.
        from pyflink.java_gateway import get_gateway

        jvm_env = get_gateway().jvm.org.apache.flink.streaming.api.environment
        env = StreamExecutionEnvironment(jvm_env.StreamExecutionEnvironment(conf._j_configuration))
    else:
        env = StreamExecutionEnvironment.get_execution_environment(conf)
    t_env = StreamTableEnvironment.create(env)
    latency = s.mini_batch_latency_ms if cfg.follow else s.replay_mini_batch_latency_ms
    table = {
        "table.exec.mini-batch.enabled": "true",
        "table.exec.mini-batch.allow-latency": f"{latency}ms",
        "table.exec.mini-batch.size": str(s.mini_batch_size),
    }
    if cfg.state_ttl_ms:
        table["table.exec.state.ttl"] = f"{cfg.state_ttl_ms}ms"
    for key, value in unset_only(t_env.get_config(), table).items():
        t_env.get_config().set(key, value)
    return env, t_env


FILTER_JOBS = {"filter_events": filter_events, "filter_activations": filter_activations}
JOBS_APART = (*FILTER_JOBS, "aggregation")  # in the order they are built
PIPELINE = "pipeline"  # the one pipeline's name among a mode's jobs (stream/<mode>.job.json)


def build(env: Any, t_env: Any, source: Source, plan: StreamPlan, cfg: PipelineConfig) -> None:
    """Register the whole pipeline, the jobs as one, on ``env``/``t_env`` (not yet executed)."""
    tables = source.register(t_env)
    sink = local_sink(t_env)
    filter_events.build(t_env, tables, sink, plan)
    filter_activations.build(t_env, tables, sink, plan)
    _aggregation(env, t_env, tables, sink, plan, cfg)
    statements = t_env.create_statement_set()
    _dead_letters(t_env, cfg, statements, ("events", "activations"))
    statements.attach_as_datastream()


def build_apart(
    job: str,
    env: Any,
    t_env: Any,
    source: Source,
    plan: StreamPlan,
    cfg: PipelineConfig,
    topics: Topics,
    columns: dict[str, Any],
) -> None:
    """Register one of the :data:`JOBS_APART` on ``env``/``t_env``, joined to the others by
    ``topics``. A filter job puts the columns of the streams it publishes into ``columns``,
    from which the aggregation job, built after them, declares its tables."""
    tables = source.register(t_env)
    if job == "aggregation":
        read_topics(t_env, topics, columns)
        _aggregation(env, t_env, tables, local_sink(t_env), plan, cfg)
        return
    statements = t_env.create_statement_set()
    FILTER_JOBS[job].build(t_env, tables, topic_sink(t_env, topics, statements, columns), plan)
    _dead_letters(t_env, cfg, statements, (job.removeprefix("filter_"),))
    statements.attach_as_datastream()


def _dead_letters(t_env: Any, cfg: PipelineConfig, statements: Any, topics: Sequence[str]) -> None:
    """The corrupt lines of ``topics`` into the dead-letter folder, a folder per topic."""
    # One writer: the file sink keeps its state as union list state, and a stop-with-savepoint
    # that finds some of its subtasks finished and others not fails
    # (PartialFinishingNotSupportedByStateException, seen once under load); dead letters are few.
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE deadletters (topic STRING, kind STRING, reason STRING, "
        "line STRING) PARTITIONED BY (topic) WITH ('connector' = 'filesystem', "
        f"'path' = '{cfg.deadletters.absolute().as_uri()}', 'format' = 'json', "
        "'sink.parallelism' = '1')"
    )
    statements.add_insert_sql("INSERT INTO deadletters " + " UNION ALL ".join(
        f"SELECT topic, kind, reason, line FROM corrupt_{topic}" for topic in topics
    ))  # fmt: skip


def _aggregation(
    env: Any, t_env: Any, tables: SourceTables, sink: Sink, plan: StreamPlan, cfg: PipelineConfig
) -> None:
    """The aggregation job over ``filtered_events`` and ``valid_activations``, and its sinks."""
    from pyflink.common.typeinfo import Types

    from streaming.functions.results_sink import PROGRESS, ResultsSink
    from streaming.functions.series_sink import SeriesSink

    filter_activations.add_periods(t_env, "valid_activations", tables.periods, sink)
    settings = cfg.settings
    aggregation.build(
        t_env,
        {"filtered_events": "filtered_events", "filtered_activations": "filtered_activations"},
        sink, plan, cfg.max_days, settings.stream.series_flush_ms, cfg.state_ttl_ms,
    )  # fmt: skip

    flush_ms = settings.stream.flush_ms
    progress = t_env.sql_query(
        "SELECT 'topic' AS what, topic AS name, records, corrupt, max_ts FROM progress_events "
        "UNION ALL SELECT 'topic', topic, records, corrupt, max_ts FROM progress_activations "
        "UNION ALL SELECT 'event_type', event_type, CAST(0 AS BIGINT), CAST(0 AS BIGINT), "
        "CAST(NULL AS BIGINT) FROM event_types"
    )
    totals = upserts(t_env, "totals", TOTAL_COLUMNS, KEY)
    results = (
        key_by(t_env, totals, ("experiment", "d"))
        .connect(t_env.to_changelog_stream(progress).broadcast(PROGRESS))
        .process(
            ResultsSink(cfg.home, settings, plan, flush_ms, str(cfg.progress), cfg.on_rows),
            output_type=Types.BOOLEAN(),
        )
        .name("results sink")
        .uid("results-sink")
    )
    results.set_parallelism(settings.stream.sink_parallelism)
    increments = upserts(t_env, "series", SERIES_COLUMNS, SERIES_KEY)
    due = series_writes(t_env, increments, settings.stream.series_flush_ms,
                        settings.stream.sink_parallelism)  # fmt: skip
    series = (
        due.process(SeriesSink(cfg.series_url), output_type=Types.BOOLEAN())
        .name("series sink")
        .uid("series-writer")  # not "series-sink", whose state a checkpoint may still hold
    )
    series.set_parallelism(settings.stream.sink_parallelism)  # forward: each series in order


def state_layout(env: Any) -> str:
    """A digest of what the job's checkpointed state is laid out by: its operators, their
    descriptions (an SQL operator's state follows its grouping, joins and columns) and how
    they are connected, from Flink's plan of the built job, and the Java functions' sources
    (the per-user operator's state encoding). Not the operators' parallelism, nor how records
    are shipped between them (forward or rebalanced follows from the parallelism), which a
    restore may change, nor the numbers the JVM counts on from job to job (:data:`_COUNTED`).
    A checkpoint taken by a job with another layout is not resumed."""
    nodes = json.loads(env.get_execution_plan())["nodes"]  # about 0.3 s here
    number = {node["id"]: n for n, node in enumerate(nodes)}  # ids count on across jobs
    graph = [
        {"type": _unnumbered(node["type"]), "contents": _unnumbered(node["contents"]),
         "inputs": sorted(number[p["id"]] for p in node.get("predecessors", []))}
        for node in nodes
    ]  # fmt: skip
    digest = hashlib.sha256(json.dumps(graph, sort_keys=True).encode())
    digest.update(jvm.sources_digest().encode())
    return digest.hexdigest()[:16]


# Numbers the JVM counts on from job to job (a process that builds the pipeline twice, as
# the supervisor does, gets others the second time): the SQL operators' ids ("Calc[12]",
# "[12]:Calc(...)"), Calcite's correlation variables ("$cor53") and the DataStreams
# converted to tables ("anonymous_datastream_source$2").
_COUNTED = re.compile(r"\[\d+\]|(?<=\$cor)\d+|(?<=anonymous_datastream_source\$)\d+")


def _unnumbered(text: str) -> str:
    return _COUNTED.sub("#", text)


def key_by(t_env: Any, stream: Any, key: Sequence[str]) -> Any:
    """``stream`` (of a table's rows) keyed by its ``key`` columns (a ``Row`` key), for a
    Python keyed function.

    PyFlink's ``key_by`` runs a Python function on every row to put its key in front (one
    more crossing into the interpreter and out per row, as many as the sink's own); here a
    Java map does it (``KeyedRows.java``), and the keyed stream is the one ``key_by`` makes.
    """
    from pyflink.common.typeinfo import Types
    from pyflink.datastream.data_stream import KeyedStream
    from pyflink.java_gateway import get_gateway

    j_stream = stream._j_data_stream
    positions, key_type, row_type = _row_key(stream, key)
    keyed_rows = jvm.new_instance(t_env, "udf.streaming.KeyedRows", positions)
    with_key = j_stream.map(keyed_rows, Types.ROW([key_type, row_type]).get_java_type_info())
    with_key.name("key")
    selector = get_gateway().jvm.KeyByKeySelector()
    keyed = with_key.keyBy(selector, Types.ROW([key_type]).get_java_type_info())
    return KeyedStream(keyed, row_type, stream)


def _row_key(stream: Any, key: Sequence[str]) -> tuple[str, Any, Any]:
    """The positions of ``key``'s columns in the rows of ``stream`` (a table's: external rows),
    comma-separated as ``KeyedRows.java`` takes them, the key's row type and the rows' type."""
    from pyflink.common.typeinfo import ExternalTypeInfo, Types, _from_java_type

    row_type = _from_java_type(stream._j_data_stream.getTransformation().getOutputType())
    rows = row_type._type_info if isinstance(row_type, ExternalTypeInfo) else row_type
    names, fields = rows.get_field_names(), rows.get_field_types()
    positions = [names.index(c) for c in key]
    return ",".join(map(str, positions)), Types.ROW([fields[i] for i in positions]), row_type


def series_writes(t_env: Any, increments: Any, flush_ms: int, parallelism: int) -> Any:
    """The series' per-bucket upserts (:data:`SERIES_COLUMNS`) gathered per (experiment,
    group, period start) in the JVM (``SeriesIncrements.java``): a DataStream of one row per
    due write, the series' counts as arrays."""
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import DataStream

    from streaming.functions.results_sink import END_OF_INPUT

    series, count = SERIES_COLUMNS[:3], SERIES_COLUMNS[3:]  # a count: kind, name, bucket, n
    positions, key_type, _ = _row_key(increments, series)
    counts, _, _ = _row_key(increments, count)
    key = jvm.new_instance(t_env, "udf.streaming.KeyedRows$Key", positions)
    keyed = increments._j_data_stream.keyBy(key, key_type.get_java_type_info())
    gather = jvm.new_instance(t_env, "udf.streaming.SeriesIncrements", str(flush_ms),
                              str(END_OF_INPUT), counts)  # fmt: skip
    texts, numbers = Types.BASIC_ARRAY(Types.STRING()), Types.BASIC_ARRAY(Types.LONG())
    written = Types.ROW_NAMED(
        [*series, "kinds", "names", "buckets", "counts"],
        [*key_type.get_field_types(), texts, texts, numbers, numbers],
    )
    j_stream = keyed.process(gather, written.get_java_type_info())
    j_stream.name("series counts").uid("series-counts").setParallelism(parallelism)
    return DataStream(j_stream)


def upserts(t_env: Any, view: str, columns: Sequence[str], key: Sequence[str]) -> Any:
    """``view``'s ``columns`` as a DataStream of upserts by ``key``: inserts, updates (+U, no
    -U before them) and deletes. Half the records of a full changelog reach Python, and
    every Python record costs a conversion into the interpreter and out again.
    """
    return upsert_stream(t_env, t_env.sql_query(f"SELECT {', '.join(columns)} FROM {view}"), key)
