"""The archive as Parquet: clean events and activations, one copy per archive hour.

All events of one user in one clock hour of ``ts`` sit in one archive hour folder (the
importer files records by event time and partition of ``user_id``), in arrival order. So
the two per-event rules of the contract §3 are local to one hour and are applied here, once:

- **duplicates**: equal ``(user_id, event_type, ts)`` are one event; the earliest line wins;
- **spam cap**: of a user's events in the hour, ordered by ``(ts, event_type)``, only the
  first ``X`` stay.

:func:`convert` is the one interface; ``spark.cleaning`` chooses who does the work
(:func:`cleaning_of`): pyarrow threads on the driver (here, :func:`clean_events`) or Spark's
executors (:mod:`metric_types.spark.cleaning`). Both parse with :mod:`metric_types.json_lines`
and give the same rows; ``auto`` takes the local one for Spark ``local[*]`` on local files,
where it is faster (docs/benchmarks.md), and Spark everywhere else.

The archive (``archive.uri``, default ``<home>/archive``, any :class:`~udf.location.Location`)
is read through its committed view (:mod:`udf.archive.view`): only the bytes of committed
imports, never half of one, even while an import runs or after one crashed. The result is
cached under ``archive.columnar_uri`` (default ``<home>/columnar``), ``<topic>/dt=/hour=/``,
beside a stamp (``_source.json``) with the fingerprint of the source files (names and
committed sizes: the archive only ever appends), ``X`` and the cleaning; a changed hour is
rebuilt, an unchanged one is reused. The local cleaning writes a temporary file of its own
and renames it into place under a lock, so a crash leaves the previous version or none,
never half a file, and processes converting the same hour at once never collide.

A line of an archive file that is not a valid record (the importer writes only valid ones,
so this means the file was damaged or edited: a torn line) is counted as corrupt, logged
with its file and line number, and left out; the rest of the hour is computed.

Columns: ``user_id, event_type, ts, value`` (1.0 when absent) plus one string column per
segment field (a string as it is, a number as its JSON spelling); activations keep
``user_id, experiment, group, ts``.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from metric_types.json_lines import read_lines, unify
from udf.archive.layout import hour_label
from udf.archive.view import ArchiveFile, committed_view, read_committed
from udf.errors import InputError
from udf.home import Home
from udf.location import Location
from udf.logging import get_logger

if TYPE_CHECKING:
    import pyarrow as pa

    from udf.settings import Settings

log = get_logger(__name__)

DATA_FILE = "data.parquet"
FINGERPRINT = "_source.json"
LOCK_FILE = ".lock"
FORMAT_VERSION = 4  # 4: numeric segment values keep their JSON spelling (1.50, not 1.5)
Cleaning = Literal["local", "spark"]


@dataclass(frozen=True)
class HourFile:
    """One converted archive hour: where its Parquet data is and the hour it holds."""

    topic: str
    hour: int  # hours since the epoch
    path: str | None  # a Parquet file or folder (path or URI); None: the hour kept no rows
    event_types: tuple[str, ...] = ()  # events only: the types present in the hour
    corrupt: int = 0  # lines of the archive files that were not valid records, left out
    source: str = ""  # digest of what the hour was made from (:func:`source_digest`); "" unknown


def hour_folder(hour: int) -> str:
    """``dt=YYYY-MM-DD/hour=HH`` of an hour counted since the epoch."""
    start = datetime.fromtimestamp(hour * 3600, tz=UTC)
    return f"dt={start:%Y-%m-%d}/hour={start:%H}"


def fingerprint_of(
    topic: str, files: Sequence[ArchiveFile], spam_cap: int, cleaning: Cleaning
) -> dict[str, Any]:
    """What an hour's cleaned copy was made from: the archive only appends, so the files'
    names and committed sizes identify their bytes."""
    return {
        "format": FORMAT_VERSION,
        "cleaning": cleaning,
        "spam_cap": spam_cap if topic == "events" else None,
        "files": {f.name: f.size for f in files},
    }


SOURCE_KEYS = ("format", "cleaning", "spam_cap", "files")


def digest(value: Any) -> str:
    """A short, stable digest of a JSON value (keys sorted)."""
    import hashlib

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def source_digest(stamp: dict[str, Any]) -> str:
    """A short digest of an hour's fingerprint (its source files, ``X``, the cleaning): equal
    digests, equal cleaned rows. Later steps key their own caches by it (:mod:`metric_types.partials`)."""
    return digest({k: stamp.get(k) for k in SOURCE_KEYS})


def matches(stored: Any, fingerprint: dict[str, Any]) -> bool:
    return isinstance(stored, dict) and {k: stored.get(k) for k in fingerprint} == fingerprint


def cleaning_of(settings: Settings, archive: Location, columnar: Location) -> Cleaning:
    """The cleaning ``spark.cleaning`` chooses; ``auto``: local pyarrow threads when Spark
    runs in this process (``local[*]``) on a local archive and copy, else Spark."""
    choice = settings.spark.cleaning
    local_files = archive.is_local and columnar.is_local
    if choice == "local" and not local_files:
        raise InputError(
            f"spark.cleaning: local reads the archive ({archive}) and writes its copy "
            f"({columnar}) on this machine's disk; use spark.cleaning: spark (or auto) for other locations"
        )
    if choice == "auto":
        on_driver = settings.spark.remote is None and settings.spark.master.startswith("local")
        return "local" if on_driver and local_files else "spark"
    return choice


def convert(
    home: Home,
    topic: str,
    *,
    spam_cap: int,
    ts_from: int | None = None,
    ts_to: int | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
) -> list[HourFile]:
    """Bring the cleaned Parquet copy of ``topic``'s hours in ``[ts_from, ts_to)`` up to date.

    Returns the converted hours (every hour of the range that has data), oldest first. The
    cleaning runs where ``spark.cleaning`` says (:func:`cleaning_of`); both give the same rows.
    """
    from udf.settings import load_settings

    settings = settings or load_settings(home)
    archive, columnar = settings.archive_location(home), settings.columnar_location(home)
    cleaning = cleaning_of(settings, archive, columnar)
    hours = committed_view(home, [topic], ts_from=ts_from, ts_to=ts_to, archive=archive).hours(
        topic
    )
    if cleaning == "spark":
        from metric_types.spark.cleaning import convert_on_spark
        from metric_types.spark.session import get_session

        spark = get_session(settings.spark)
        done = convert_on_spark(spark, topic, hours, columnar.join(topic), spam_cap)
    else:
        out_root = columnar.local_path / topic
        jobs = [(topic, hour, files, out_root, spam_cap) for hour, files in hours]
        # pyarrow releases the GIL while it parses, sorts and writes; two threads per core keep
        # the cores busy while others wait on file reads (measured: 1.6x faster than one per core).
        threads = workers or min(8, 2 * (os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            done = list(pool.map(lambda job: _convert_hour(*job), jobs))
    rebuilt = sum(1 for _, fresh in done if fresh)
    corrupt = sum(hour_file.corrupt for hour_file, _ in done)
    log.info("columnar", topic=topic, hours=len(done), rebuilt=rebuilt, cleaning=cleaning)
    if corrupt:
        log.warning("archive.corrupt", topic=topic, lines=corrupt,
                    hours=[hour_label(h.hour) for h, _ in done if h.corrupt],
                    action="left out; the lines were logged with their files when the hours were read")  # fmt: skip
    return [hour_file for hour_file, _ in done]


def _convert_hour(
    topic: str, hour: int, files: list[ArchiveFile], out_root: Path, spam_cap: int
) -> tuple[HourFile, bool]:
    out_dir = out_root / hour_folder(hour)
    target = out_dir / DATA_FILE
    fingerprint = fingerprint_of(topic, files, spam_cap, "local")
    stamp = out_dir / FINGERPRINT
    if target.exists() and stamp.exists():
        try:
            stored = json.loads(stamp.read_text())
            if matches(stored, fingerprint):
                known = tuple(stored.get("event_types", ()))
                found = HourFile(topic, hour, str(target), known, stored.get("corrupt", 0),
                                 source_digest(stored))  # fmt: skip
                return found, False
        except (ValueError, FileNotFoundError):  # torn, or swapped out by another writer
            pass
    corrupt: list[int] = []
    table = unify((read_lines(read_committed(f), topic, f.label, corrupt) for f in files), topic)
    kinds: tuple[str, ...] = ()
    if topic == "events":
        table = clean_events(table, spam_cap)
        kinds = tuple(sorted(set(table.column("event_type").unique().to_pylist())))
        fingerprint["event_types"] = list(kinds)
    fingerprint["corrupt"] = len(corrupt)
    _write_atomically(table, out_dir, target, stamp, fingerprint)
    return HourFile(topic, hour, str(target), kinds, len(corrupt), source_digest(fingerprint)), True


def _write_atomically(
    table: pa.Table, out_dir: Path, target: Path, stamp: Path, fingerprint: dict[str, Any]
) -> None:
    """Write the hour's data and stamp beside them, then swap them in under the hour's lock.

    Parallel compute tasks on one home convert the same hours at once: each writer has its
    own temporary files, and the swap (stamp out, data in, stamp in: three renames) is
    serialised by an exclusive lock on the topic's ``.lock``, so the last writer's data and
    stamp always land together. A crash mid-swap leaves no stamp: the hour is rebuilt.
    """
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    mine = uuid.uuid4().hex[:12]
    tmp = target.with_name(f".{target.name}.{mine}.tmp")
    tmp_stamp = stamp.with_name(f".{stamp.name}.{mine}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        tmp_stamp.write_text(json.dumps(fingerprint, sort_keys=True))
        with (out_dir.parents[1] / LOCK_FILE).open("a") as lock:  # <topic>/dt=/hour=
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            stamp.unlink(missing_ok=True)  # the stamp vouches for the data: remove it first
            tmp.replace(target)
            tmp_stamp.replace(stamp)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_stamp.unlink(missing_ok=True)


# -- the two per-event rules ------------------------------------------------------------------


def clean_events(table: pa.Table, spam_cap: int) -> pa.Table:
    """Drop duplicates (keeping the earliest line) and events over the hourly cap.

    ``table`` holds one clock hour in arrival order. Rows are sorted by
    ``(user_id, ts, event_type, line)``: copies of one event are then adjacent with the
    earliest first, and each user's events are in cap order, so both rules are a comparison
    with the previous row and a running count.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return table
    table = table.append_column("_line", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    order = pc.sort_indices(
        table,
        sort_keys=[("user_id", "ascending"), ("ts", "ascending"), ("event_type", "ascending"),
                   ("_line", "ascending")],
    )  # fmt: skip
    table = table.take(order).drop_columns(["_line"])
    user = table.column("user_id").to_numpy()
    ts = table.column("ts").to_numpy()
    kind = pc.dictionary_encode(table.column("event_type")).combine_chunks().indices.to_numpy()
    same_user = np.concatenate(([False], user[1:] == user[:-1]))
    duplicate = same_user & np.concatenate(([False], (ts[1:] == ts[:-1]) & (kind[1:] == kind[:-1])))
    table = table.filter(pa.array(~duplicate))
    user = user[~duplicate]
    starts = np.flatnonzero(np.concatenate(([True], user[1:] != user[:-1])))
    run_start = np.repeat(starts, np.diff(np.append(starts, len(user))))
    rank = np.arange(len(user)) - run_start
    return table.filter(pa.array(rank < spam_cap))
