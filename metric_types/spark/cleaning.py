"""The cleaning on Spark: de-duplication and the hourly spam cap as Spark transformations.

The same rules, the same parser and the same cache as the local cleaning
(:mod:`metric_types.columnar`), with every byte of the work on Spark's executors:

1. **Read.** Spark's ``binaryFile`` source reads each archive file whole, as one row, at its
   URI (any file system Spark's Hadoop client reaches). ``binaryFile`` is not splittable: a
   file is one row of one task, so its lines cannot be reordered across tasks (the price: a
   file must fit in one row, under 2 GiB; an archive file holds one hour of one partition).
   Only its *committed* bytes are kept (the file's first ``size`` bytes, from the archive's
   committed view): bytes an import is appending, or a crashed import left, are never read.
2. **Parse.** ``mapInArrow`` runs :func:`metric_types.json_lines.read_lines` on each file:
   the local cleaning's own parser, so a line is valid, corrupt or typed identically. Each
   row carries its file's partition and its line index: arrival order, explicitly.
   Segment fields travel as one ``map<string,string>`` column.
3. **Clean.** One window per (hour, user), ordered by ``(ts, event_type, partition, line)``:
   a row equal to the previous one in ``(ts, event_type)`` is a later copy of the same event
   (the earliest line wins); of the rest, the first ``X`` stay. The data are partitioned by
   hour once, so the window needs no second shuffle and each hour is written by one task.
4. **Write** the stale hours into a folder of their own (``<columnar>/<topic>/runs/<id>/``,
   partitioned by ``hour``), then each hour's stamp (``dt=/hour=/_source.json``, the
   fingerprint plus where the data are). A stamp is written after its data, whole, so a crash
   leaves the previous version or none, and concurrent runs never share a data folder.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from metric_types.columnar import (
    FINGERPRINT,
    HourFile,
    fingerprint_of,
    hour_folder,
    matches,
    source_digest,
)
from udf.archive.view import ArchiveFile
from udf.location import Location
from udf.logging import get_logger

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

RUNS = "runs"
TASK_BYTES = 32 << 20  # archive bytes parsed per task
# the part of a file's URI that names it inside its topic
_KEY = r"(dt=[^/]+/hour=[^/]+/part-[0-9]+\.jsonl)$"
_DDL = {
    "events": "user_id long, event_type string, ts long, value double, extras map<string,string>",
    "activations": "user_id long, experiment string, `group` string, ts long",
}


def convert_on_spark(
    spark: SparkSession,
    topic: str,
    hours: Sequence[tuple[int, list[ArchiveFile]]],
    out: Location,
    spam_cap: int,
) -> list[tuple[HourFile, bool]]:
    """Bring ``topic``'s cleaned copy under ``out`` up to date for ``hours``; each hour's
    :class:`HourFile` and whether it was rebuilt, oldest first."""
    fingerprints = {hour: fingerprint_of(topic, files, spam_cap, "spark") for hour, files in hours}
    with ThreadPoolExecutor(max_workers=8) as pool:  # stamps are small reads, slow on object stores
        stamps = dict(
            zip(fingerprints, pool.map(lambda h: _stamp(out, h), fingerprints), strict=True)
        )
    present = _present(out, [s["data"] for s in stamps.values() if s and s.get("data")])
    done: dict[int, tuple[HourFile, bool]] = {}
    stale = []
    for hour, files in hours:
        stored = stamps[hour]
        data = stored.get("data") if stored else None
        if (
            stored is not None
            and matches(stored, fingerprints[hour])
            and (not data or data in present)
        ):
            done[hour] = (_hour_file(topic, hour, out, stored), False)
        else:
            stale.append((hour, files))
    if stale:
        for hour, stamp in _clean(spark, topic, stale, out, spam_cap, fingerprints).items():
            out.write_bytes(
                f"{hour_folder(hour)}/{FINGERPRINT}", json.dumps(stamp, sort_keys=True).encode()
            )
            done[hour] = (_hour_file(topic, hour, out, stamp), True)
    return [done[hour] for hour, _ in hours]


def _present(out: Location, folders: list[str]) -> set[str]:
    """Which of the data folders (relative to ``out``) still exist (one listing call)."""
    from pyarrow.fs import FileType

    fs, base = out.filesystem()
    infos = fs.get_file_info([f"{base}/{folder}" for folder in folders])
    return {
        folder
        for folder, info in zip(folders, infos, strict=True)
        if info.type != FileType.NotFound
    }


def _stamp(out: Location, hour: int) -> dict[str, Any] | None:
    raw = out.read_bytes(f"{hour_folder(hour)}/{FINGERPRINT}")
    try:
        return json.loads(raw) if raw else None
    except ValueError:  # torn: rebuilt
        return None


def _hour_file(topic: str, hour: int, out: Location, stamp: dict[str, Any]) -> HourFile:
    data = stamp.get("data")
    path = out.join(data).spark_uri if data else None
    kinds = tuple(stamp.get("event_types", ()))
    return HourFile(topic, hour, path, kinds, stamp.get("corrupt", 0), source_digest(stamp))


def _clean(
    spark: SparkSession,
    topic: str,
    hours: Sequence[tuple[int, list[ArchiveFile]]],
    out: Location,
    spam_cap: int,
    fingerprints: dict[int, dict[str, Any]],
) -> dict[int, dict[str, Any]]:
    """Clean ``hours`` on Spark into a run folder of their own; each hour's new stamp."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    files = [f for _, fs in hours for f in fs]
    listing = spark.createDataFrame(
        [(f.rel.split("/", 1)[1], f.hour, f.partition, f.size) for f in files],
        "key string, hour long, partition int, size long",
    )
    # Archive files are small (an hour of one partition) and Spark packs them by an open
    # cost of 4 MiB each: thousands of files made hundreds of tasks of a few KiB each. Parse
    # about TASK_BYTES per task instead (no shuffle: neighbouring scan splits are merged).
    tasks = max(1, -(-sum(f.size for f in files) // TASK_BYTES))
    raw = _read_files(spark, files).coalesce(tasks).join(F.broadcast(listing), "key")
    schema = f"hour long, partition int, line long, {_DDL[topic]}, corrupt int"
    parsed = raw.mapInArrow(_parser(topic), schema).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        aggregates = [F.sum("corrupt").alias("corrupt")]
        if topic == "events":
            aggregates.append(F.flatten(F.collect_set(F.map_keys("extras"))).alias("keys"))
        meta = {r["hour"]: r for r in parsed.groupBy("hour").agg(*aggregates).collect()}
        fields = sorted(
            {k for r in meta.values() for k in (r["keys"] if topic == "events" else ())}
        )
        rows = parsed.where(F.col("line") >= 0).repartition("hour")
        kept = _capped(rows, spam_cap) if topic == "events" else rows
        columns = [F.col(c) for c in ("user_id", "event_type", "ts", "value")]
        columns += [F.col("extras")[k].alias(k) for k in fields]
        if topic != "events":
            columns = [F.col(c) for c in ("user_id", "experiment", "group", "ts")]
        run = f"{RUNS}/{uuid.uuid4().hex[:16]}"
        target = out.join(run).spark_uri
        kept.select(*columns, "hour").write.partitionBy("hour").option(
            "compression", "zstd"
        ).parquet(target)
    finally:
        parsed.unpersist()
    kinds: dict[int, list[str]] = {}
    if topic == "events":
        found = (
            spark.read.parquet(target).groupBy("hour").agg(F.collect_set("event_type").alias("k"))
        )
        kinds = {r["hour"]: sorted(r["k"]) for r in found.collect()}
    written = set(kinds) if topic == "events" else _written_hours(spark, target)
    stamps = {}
    for hour, _ in hours:
        stamp = dict(fingerprints[hour])
        stamp["data"] = f"{run}/hour={hour}" if hour in written else None
        stamp["corrupt"] = int(meta[hour]["corrupt"] or 0) if hour in meta else 0
        if topic == "events":
            stamp["event_types"] = kinds.get(hour, [])
        stamps[hour] = stamp
    log.info("columnar.spark", topic=topic, hours=len(hours), files=len(files), run=run)
    return stamps


def _read_files(spark: SparkSession, files: Sequence[ArchiveFile]) -> DataFrame:
    """``key, path, content`` of ``files``, each read whole. Spark lists their days' folders
    (one path per day: handing it thousands of file paths took seconds per hundred) and
    prunes to their hours by the folders' ``dt``/``hour`` partition values."""
    from datetime import date

    from pyspark.sql import functions as F

    topic_root = files[0].root.join(files[0].topic)
    by_day: dict[str, set[int]] = {}
    for f in files:
        day, hour = f.rel.split("/")[1:3]
        by_day.setdefault(day, set()).add(int(hour.removeprefix("hour=")))
    wanted = [
        (F.col("dt") == F.lit(date.fromisoformat(day.removeprefix("dt=")))) & F.col("hour").isin(sorted(hours))
        for day, hours in sorted(by_day.items())
    ]  # fmt: skip
    condition = wanted[0]
    for more in wanted[1:]:
        condition = condition | more
    return (
        spark.read.format("binaryFile")
        .option("basePath", topic_root.spark_uri)
        .option("pathGlobFilter", "part-*.jsonl")
        .load([topic_root.join(day).spark_uri for day in sorted(by_day)])
        .where(condition)
        .select(F.regexp_extract("path", _KEY, 1).alias("key"), "path", "content")
    )  # fmt: skip


def _capped(rows: DataFrame, spam_cap: int) -> DataFrame:
    """Drop later copies of an event and a user's events over the hour's cap (one window)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    user_hour = Window.partitionBy("hour", "user_id")
    arrival = user_hour.orderBy("ts", "event_type", "partition", "line")
    same = (F.lag("ts").over(arrival) == F.col("ts")) & (
        F.lag("event_type").over(arrival) == F.col("event_type")
    )
    unique = rows.withColumn("_copy", F.coalesce(same, F.lit(False))).where(~F.col("_copy"))
    ranked = unique.withColumn("_rank", F.row_number().over(user_hour.orderBy("ts", "event_type")))
    return ranked.where(F.col("_rank") <= spam_cap)


def _written_hours(spark: SparkSession, target: str) -> set[int]:
    return {r["hour"] for r in spark.read.parquet(target).select("hour").distinct().collect()}


def _parser(topic: str) -> Any:
    """The ``mapInArrow`` function: archive files (path, content, hour, partition, size) in,
    their records out, each with its line index; one row per file with corrupt lines."""

    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from metric_types.json_lines import read_lines

        for batch in batches:
            columns = batch.to_pydict()
            for path, content, hour, partition, size in zip(
                columns["path"], columns["content"], columns["hour"], columns["partition"],
                columns["size"], strict=True,
            ):  # fmt: skip
                corrupt: list[int] = []
                table = read_lines(content[:size], topic, path, corrupt)
                yield from _records(table, topic, hour, partition, len(corrupt)).to_batches()

    return parse


def _records(table: pa.Table, topic: str, hour: int, partition: int, corrupt: int) -> pa.Table:
    """``table`` in the parser's output schema, plus a row counting corrupt lines."""
    import numpy as np
    import pyarrow as pa

    n = table.num_rows
    known = ("user_id", "event_type", "ts", "value") if topic == "events" else (
        "user_id", "experiment", "group", "ts")  # fmt: skip
    out = {
        "hour": pa.array(np.full(n, hour, dtype=np.int64)),
        "partition": pa.array(np.full(n, partition, dtype=np.int32)),
        "line": pa.array(np.arange(n, dtype=np.int64)),
        **{name: table.column(name) for name in known},
    }
    if topic == "events":
        out["extras"] = _extras(table, [c for c in table.column_names if c not in known])
    out["corrupt"] = pa.array(np.zeros(n, dtype=np.int32))
    records = pa.table(out)
    if corrupt:
        row: dict[str, list[Any]] = {name: [None] for name in records.column_names}
        row.update(hour=[hour], partition=[partition], line=[-1], corrupt=[corrupt])
        records = pa.concat_tables([records, pa.table(row, schema=records.schema)])
    return records


def _extras(table: pa.Table, names: list[str]) -> pa.Array:
    """The segment fields of each row as one map (a null value is an absent field)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n, k = table.num_rows, len(names)
    if not k:
        return pa.MapArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)),
                                       pa.array([], pa.string()), pa.array([], pa.string()))  # fmt: skip
    values = pa.concat_arrays([table.column(c).combine_chunks().cast(pa.string()) for c in names])
    order = (np.arange(k)[None, :] * n + np.arange(n)[:, None]).ravel()  # row by row
    items = values.take(pa.array(order))
    keys = pa.array(np.tile(np.array(names, dtype=object), n), pa.string())
    present = pc.is_valid(items)
    counts = np.asarray(present).reshape(n, k).sum(axis=1)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.MapArray.from_arrays(pa.array(offsets), keys.filter(present), items.filter(present))
