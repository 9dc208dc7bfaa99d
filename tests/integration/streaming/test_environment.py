"""The stream settings that shape the Flink job reach its configuration (none is accepted and
then ignored): the local job's environment, as :func:`streaming.pipeline.environment` makes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from udf.home import Home
from udf.settings import load_settings

pytestmark = [pytest.mark.flink]
ROOT = Path(__file__).resolve().parents[3]


def _environment(tmp_path: Path, settings_yaml: str) -> tuple[Any, Any, Any]:
    """The local job's environments for a home with ``settings_yaml``, and its settings."""
    from streaming.pipeline import PipelineConfig, environment

    home = Home.resolve(tmp_path / "home").ensure()
    (home.root / "settings.yaml").write_text(settings_yaml)
    settings = load_settings(home, {})
    cfg = PipelineConfig(
        home=home, settings=settings, checkpoints=tmp_path / "checkpoints",
        deadletters=tmp_path / "dead", progress=tmp_path / "progress",
        series_url=settings.results_url(home), max_days=2,
    )  # fmt: skip
    env, t_env = environment(cfg)
    return env, t_env, settings


# The garbage collectors and the JIT thresholds' scale of the JVM a stream command starts
# (PyFlink's, on first use): it starts once per process, so each case is a process of its own.
COLLECTORS = """
import sys
from pathlib import Path

from pyflink.java_gateway import get_gateway

from tests.integration.streaming.test_environment import _environment

_environment(Path(sys.argv[1]), sys.argv[2])
jvm = get_gateway().jvm
management = jvm.java.lang.management.ManagementFactory
beans = management.getGarbageCollectorMXBeans()
hotspot = management.getPlatformMXBean(
    jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
scaling = hotspot.getVMOption("CompileThresholdScaling").getValue()
print(",".join(sorted(bean.getName() for bean in beans)) + ";" + scaling)
"""


def _collectors(tmp_path: Path, settings_yaml: str, jvm_args: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JVM_ARGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if jvm_args is not None:
        env["JVM_ARGS"] = jvm_args
    out = subprocess.run([sys.executable, "-c", COLLECTORS, str(tmp_path), settings_yaml],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_the_local_jvm_gets_the_settings_options_unless_jvm_args_are_set(tmp_path: Path) -> None:
    # The default: the parallel collector (G1 is the JVM's own on this machine) and the JIT
    # compilers' thresholds scaled by 4 (the JVM's own scale is 1).
    assert _collectors(tmp_path / "a", "") == "PS MarkSweep,PS Scavenge;4.0"
    assert _collectors(tmp_path / "b", "stream:\n  jvm_options: -XX:+UseSerialGC\n") == (
        "Copy,MarkSweepCompact;1.0"
    )
    # JVM_ARGS in the environment wins over the setting.
    collectors, scaling = _collectors(tmp_path / "c", "", jvm_args="-XX:+UseG1GC").split(";")
    assert collectors.startswith("G1 ") and scaling == "1.0"


def _explaining_sink(t_env: Any, plans: dict[str, str]) -> Any:
    """A sink that publishes each stream as a plain view and keeps its explained plan."""

    def sink(name: str, query: str, **_: Any) -> None:
        plans[name] = t_env.explain_sql(query)
        t_env.create_temporary_view(name, t_env.sql_query(query))

    return sink


def _empty_plan() -> Any:
    from streaming.plan import StreamPlan

    return StreamPlan(metrics=(), controls=frozenset(), analysis={}, experiment_segments={},
                      taken_names=frozenset())  # fmt: skip


def _aggregation_plans(tmp_path: Path, settings_yaml: str) -> tuple[dict[str, str], Any, Any]:
    """The explained plan of each stream the aggregation job publishes over two generated
    inputs, with ``settings_yaml``; its table environment and settings."""
    from streaming.jobs import aggregation

    _, t_env, settings = _environment(tmp_path, settings_yaml)
    t_env.execute_sql("CREATE TEMPORARY TABLE fe (user_id BIGINT, event_type STRING, ts BIGINT, "
                      "`value` DOUBLE) WITH ('connector' = 'datagen')")  # fmt: skip
    t_env.execute_sql("CREATE TEMPORARY TABLE fa (user_id BIGINT, experiment STRING, grp STRING, "
                      "ts BIGINT, period_start BIGINT, period_end BIGINT, interval_start BIGINT) "
                      "WITH ('connector' = 'datagen')")  # fmt: skip
    plans: dict[str, str] = {}
    aggregation.build(t_env, {"filtered_events": "fe", "filtered_activations": "fa"},
                      _explaining_sink(t_env, plans), _empty_plan(), 2,
                      settings.stream.series_flush_ms)  # fmt: skip
    return plans, t_env, settings


def test_stream_settings_reach_the_job_configuration(tmp_path: Path) -> None:
    env, t_env, _ = _environment(
        tmp_path,
        "stream:\n"
        "  parallelism: 1\n"
        "  state_backend: hashmap\n"
        "  state_memory: 768m\n"
        "  checkpoint_interval_seconds: 7\n"
        "  replay_mini_batch_latency_ms: 1234\n"
        "  flink_conf: {pipeline.name: mine, state.backend.rocksdb.compression.per.level: LZ4_COMPRESSION}\n",
    )
    conf = dict(env._j_stream_execution_environment.getConfiguration().toMap())
    assert conf["parallelism.default"] == "1"
    assert conf["state.backend.type"] == "hashmap"
    assert conf["taskmanager.memory.managed.size"] == "768m"
    assert env.get_checkpoint_config().get_checkpoint_interval() == 7000
    assert conf["pipeline.name"] == "mine"  # flink_conf has the last word
    assert conf["state.backend.rocksdb.compression.per.level"] == "LZ4_COMPRESSION"
    assert conf["state.backend.rocksdb.use-bloom-filter"] == "true"  # the tuned default
    table = dict(t_env.get_config().get_configuration().to_dict())
    assert table["table.exec.mini-batch.allow-latency"] == "1234ms"


def test_a_remote_target_in_flink_conf_is_kept(tmp_path: Path) -> None:
    """``execution.target: remote`` in ``stream.flink_conf`` (the docker stack's settings) makes
    an environment that submits to that cluster: Flink's ``get_execution_environment`` would
    make a local one, its target ``local`` whatever the configuration said."""
    env, _, _ = _environment(
        tmp_path,
        "stream:\n  flink_conf: {execution.target: remote, rest.address: flink, rest.port: 8081}\n",
    )
    java = env._j_stream_execution_environment
    conf = dict(java.getConfiguration().toMap())
    assert conf["execution.target"] == "remote" and conf["rest.address"] == "flink"
    assert java.getClass().getSimpleName() == "StreamExecutionEnvironment"  # not Local...
    local, _, _ = _environment(tmp_path / "local", "")
    assert local._j_stream_execution_environment.getClass().getSimpleName() == (
        "LocalStreamEnvironment"
    )


def test_rocksdbs_memtables_get_bloom_filters_unless_the_user_names_a_factory(
    tmp_path: Path,
) -> None:
    """The job's RocksDB options factory is the jar's ``MemtableFilters``, which gives every
    column family a bloom filter of whole keys on its memtables; a factory named in
    ``stream.flink_conf`` replaces it."""
    from pyflink.java_gateway import get_gateway

    from streaming import jvm

    env, t_env, _ = _environment(tmp_path, "")
    conf = dict(env._j_stream_execution_environment.getConfiguration().toMap())
    assert conf["state.backend.rocksdb.options-factory"] == jvm.ROCKSDB_OPTIONS
    gateway = get_gateway()
    rocksdb = gateway.jvm.org.rocksdb
    rocksdb.RocksDB.loadLibrary()
    plain = rocksdb.ColumnFamilyOptions()
    assert not plain.memtableWholeKeyFiltering() and plain.memtablePrefixBloomSizeRatio() == 0
    factory = jvm.new_instance(t_env, jvm.ROCKSDB_OPTIONS)
    options = factory.createColumnOptions(plain, gateway.jvm.java.util.ArrayList())
    assert options.memtableWholeKeyFiltering()
    assert 0 < options.memtablePrefixBloomSizeRatio() <= 0.25  # RocksDB's own bound
    assert factory.createDBOptions(rocksdb.DBOptions(), gateway.jvm.java.util.ArrayList())

    env, _, _ = _environment(
        tmp_path / "own",
        "stream:\n  flink_conf: {state.backend.rocksdb.options-factory: my.Factory}\n",
    )
    conf = dict(env._j_stream_execution_environment.getConfiguration().toMap())
    assert conf["state.backend.rocksdb.options-factory"] == "my.Factory"


def test_the_series_is_planned_with_mini_batches_of_its_flush_interval(tmp_path: Path) -> None:
    """The operator's changes and the totals keep the replay's mini-batch latency; the series'
    aggregation gathers changes for ``series_flush_seconds`` (one update per bucket per flush,
    not per mini-batch), and the table configuration is the same again afterwards."""
    plans, t_env, settings = _aggregation_plans(
        tmp_path, "stream:\n  replay_mini_batch_latency_ms: 1234\n  series_flush_seconds: 42\n"
    )
    assert "MiniBatchAssigner(interval=[1234ms]" in plans["changes"]
    assert "MiniBatchAssigner(interval=[1234ms]" in plans["totals"]
    # The operator's changes are summed in its thread first (PreSums.java): no local sums.
    assert "GroupAggregate" in plans["changes"] and "GroupAggregate" in plans["series"]
    assert "LocalGroupAggregate" not in plans["changes"] + plans["series"]
    assert "MiniBatchAssigner(interval=[42000ms]" in plans["series"]
    assert "1234ms" not in plans["series"]
    table = dict(t_env.get_config().get_configuration().to_dict())
    assert table["table.exec.mini-batch.allow-latency"] == "1234ms"
    assert table["table.exec.mini-batch.size"] == str(settings.stream.mini_batch_size)


def test_the_users_mini_batch_options_in_flink_conf_win_over_the_settings(tmp_path: Path) -> None:
    """``table.exec.*`` options in ``stream.flink_conf`` reach the SQL stages, as any other Flink
    option does, though the settings' mini-batch options set the same keys."""
    plans, t_env, _ = _aggregation_plans(
        tmp_path,
        "stream:\n  replay_mini_batch_latency_ms: 1234\n"
        "  flink_conf: {table.exec.mini-batch.allow-latency: 250ms, table.exec.mini-batch.size: '77'}\n",
    )
    assert "MiniBatchAssigner(interval=[250ms]" in plans["changes"]
    assert "1234ms" not in plans["changes"] + plans["totals"]
    config = t_env.get_config()
    assert config.get("table.exec.mini-batch.size", None) == "77"
    assert config.get("table.exec.mini-batch.enabled", None) == "true"  # the setting's default


def test_a_users_aggregation_phases_reach_the_sums_after_the_operator(tmp_path: Path) -> None:
    """``table.optimizer.agg-phase-strategy`` in ``stream.flink_conf`` is kept for the sums
    that are otherwise planned in one phase (the test above): two phases, a local sum."""
    plans, _, _ = _aggregation_plans(
        tmp_path, "stream:\n  flink_conf: {table.optimizer.agg-phase-strategy: TWO_PHASE}\n"
    )
    assert "LocalGroupAggregate" in plans["changes"] and "LocalGroupAggregate" in plans["series"]


def test_a_stream_published_with_its_key_reaches_python_as_upserts(tmp_path: Path) -> None:
    """Published with its key, a stream reaches a Python sink as upserts: each update is one
    +U, no -U before it (half the records of a changelog), and the last value of each key is
    the stream's. The same stream published as a plain changelog carries the -U."""
    from pyflink.common import RowKind

    from streaming.jobs import local_sink
    from streaming.pipeline import upserts

    _, t_env, _ = _environment(tmp_path, "stream:\n  parallelism: 1\n")
    t_env.get_config().set("table.exec.mini-batch.enabled", "false")  # an update per row
    t_env.execute_sql("CREATE TEMPORARY VIEW v AS SELECT * FROM (VALUES ('a', 1), ('b', 2), "
                      "('a', 3), ('a', 4), ('b', 5)) AS T(k, x)")  # fmt: skip
    sink = local_sink(t_env)
    sink("keyed", "SELECT k, SUM(x) AS s FROM v GROUP BY k", key=("k",))
    sink("plain", "SELECT k, SUM(x) AS s FROM v GROUP BY k")
    keyed = list(upserts(t_env, "keyed", ("k", "s"), ("k",)).execute_and_collect())
    assert [r.get_row_kind() for r in keyed if r[0] == "a"] == [
        RowKind.INSERT,
        RowKind.UPDATE_AFTER,
        RowKind.UPDATE_AFTER,
    ]
    assert {r[0]: r[1] for r in keyed} == {"a": 8, "b": 7}
    changelog = t_env.to_changelog_stream(t_env.from_path("plain")).execute_and_collect()
    assert RowKind.UPDATE_BEFORE in {r.get_row_kind() for r in changelog}


def test_rows_keyed_in_java_reach_a_python_keyed_function_with_their_key_and_kind(
    tmp_path: Path,
) -> None:
    """The sinks' key selector (a Java map, ``KeyedRows.java``): a Python keyed function gets
    each row whole, with its row kind, under the key of the fields asked for; its keyed
    state is per key (a running count per key)."""
    from pyflink.common import Row, RowKind
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import ValueStateDescriptor

    from streaming.pipeline import key_by, upserts

    class Seen(KeyedProcessFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.INT()))

        def process_element(self, value: Row, ctx: Any) -> Any:
            n = (self.n.value() or 0) + 1
            self.n.update(n)
            yield Row(repr(tuple(ctx.get_current_key())), value[0], value[2], n,
                      value.get_row_kind().value)  # fmt: skip

    _, t_env, _ = _environment(tmp_path, "stream:\n  parallelism: 2\n")
    t_env.get_config().set("table.exec.mini-batch.enabled", "false")  # an update per row
    t_env.execute_sql("CREATE TEMPORARY VIEW v AS SELECT * FROM (VALUES ('a', 1, 10), "
                      "('b', 1, 20), ('a', 1, 30), ('a', 2, 40)) AS T(k, j, x)")  # fmt: skip
    t_env.create_temporary_view(
        "sums", t_env.sql_query("SELECT k, j, SUM(x) AS s FROM v GROUP BY k, j")
    )
    stream = key_by(t_env, upserts(t_env, "sums", ("k", "j", "s"), ("k", "j")), ("k", "j"))
    out = stream.process(Seen(), output_type=Types.ROW(
        [Types.STRING(), Types.STRING(), Types.LONG(), Types.INT(), Types.BYTE()]))  # fmt: skip
    got = sorted(tuple(r) for r in out.execute_and_collect())
    inserted, updated = RowKind.INSERT.value, RowKind.UPDATE_AFTER.value
    assert got == [
        ("('a', 1)", "a", 10, 1, inserted),
        ("('a', 1)", "a", 40, 2, updated),
        ("('a', 2)", "a", 40, 1, inserted),
        ("('b', 1)", "b", 20, 1, inserted),
    ]


def test_the_per_user_stage_and_its_activations_join_are_planned_without_mini_batches(
    tmp_path: Path,
) -> None:
    """The activations' join with the periods is planned with its one reader, the per-user
    operator's inputs. With mini-batches it becomes a mini-batch join, which waits for a
    mini-batch watermark from both inputs; the periods' side sends none between its rare
    changes, so it emitted only at checkpoints (a run's freshness was the checkpoint
    interval). The inputs are planned without them; the sums after the operator keep theirs."""
    from streaming.jobs import aggregation, filter_activations
    from streaming.sources import PERIOD_VERSIONS, SourceTables

    _, t_env, settings = _environment(tmp_path, "stream:\n  replay_mini_batch_latency_ms: 1234\n")
    t_env.execute_sql("CREATE TEMPORARY TABLE fe (user_id BIGINT, event_type STRING, ts BIGINT, "
                      "`value` DOUBLE, segs ARRAY<STRING>) WITH ('connector' = 'datagen')")  # fmt: skip
    t_env.execute_sql("CREATE TEMPORARY TABLE raw_activations (line STRING, p INT, ts TIMESTAMP_LTZ(3), "
                      "WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen')")  # fmt: skip
    t_env.execute_sql(f"CREATE TEMPORARY TABLE period_versions ({PERIOD_VERSIONS}) "
                      "WITH ('connector' = 'datagen')")  # fmt: skip
    plans: dict[str, str] = {}
    sink, plan = _explaining_sink(t_env, plans), _empty_plan()
    tables = SourceTables("raw_events", "raw_activations", "period_versions")
    filter_activations.build(t_env, tables, sink, plan)
    filter_activations.add_periods(t_env, "valid_activations", tables.periods, sink)
    aggregation.build(t_env, {"filtered_events": "fe", "filtered_activations": "filtered_activations"},
                      sink, plan, 2, settings.stream.series_flush_ms)  # fmt: skip
    per_user = plans["user_inputs"].split("== Optimized Physical Plan ==")[1]
    assert "Join(" in per_user
    assert "MiniBatch" not in per_user
    assert "MiniBatchAssigner(interval=[1234ms]" in plans["changes"]  # the sums keep theirs
    table = dict(t_env.get_config().get_configuration().to_dict())
    assert table["table.exec.mini-batch.enabled"] == "true"  # and so does what is planned later
