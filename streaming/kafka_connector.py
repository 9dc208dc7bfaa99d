"""The Flink Kafka connector for PyFlink: its jars (for ``pipeline.jars``) and table options.

PyFlink's wheel ships no Kafka connector. Where the jars come from, in order:

1. ``$UDF_FLINK_KAFKA_JARS``: the jars of ``flink-connector-kafka`` and ``kafka-clients``
   (and the compression libraries ``kafka-clients`` uses), as paths separated by ``:`` or
   a folder holding them. Production images take them from Apache's Maven repository.
2. Otherwise the PyPI package ``shigawire-apache-flink-libraries`` 2.0.0.post1, which holds
   Apache's ``flink-connector-kafka`` 4.0.1-2.0 and ``kafka-clients`` 3.9.1 (built for Flink
   2.0; checked with PyFlink 2.3): its wheel is downloaded once with pip (or uv) into a
   cache folder (``$UDF_CONNECTOR_CACHE``, else ``<home>/cache``) and only these jars are
   extracted. It is never installed into the environment, where its Flink 2.0 jars would
   sit beside 2.3's.

Without either, :func:`kafka_connector_jars` raises :class:`~udf.errors.ConnectorError`
with what to do. :func:`kafka_table_options` writes the options of a Kafka table that
starts (and optionally stops) at given offsets per partition: what a reader of the archive
needs to carry on in Kafka exactly where the archive ends.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from udf.errors import ConnectorError
from udf.home import Home
from udf.logging import get_logger

log = get_logger(__name__)

PACKAGE = "shigawire-apache-flink-libraries"
VERSION = "2.0.0.post1"
JARS = (
    "flink-connector-kafka.jar",
    "kafka-clients.jar",
    "lz4-java.jar",
    "snappy-java.jar",
    "zstd-jni.jar",
)
REQUIRED = ("flink-connector-kafka", "kafka-clients")  # what a jar list must contain
JARS_ENV = "UDF_FLINK_KAFKA_JARS"
CACHE_ENV = "UDF_CONNECTOR_CACHE"
DOWNLOAD_TIMEOUT_S = 900


def kafka_connector_jars(cache: Path | None = None) -> list[str]:
    """``file://`` URLs of the Kafka connector's jars, fetched into the cache on first use."""
    given = os.environ.get(JARS_ENV)
    if given:
        return [p.as_uri() for p in _given_jars(given)]
    folder = (cache or default_cache()) / f"{PACKAGE}-{VERSION}"
    if not all((folder / jar).is_file() for jar in JARS):
        folder.parent.mkdir(parents=True, exist_ok=True)
        with _locked(folder.parent / f".{PACKAGE}.lock"):
            if not all((folder / jar).is_file() for jar in JARS):  # another process may have
                _fetch(folder)
    return [(folder / jar).resolve().as_uri() for jar in JARS]


def default_cache(home: Home | None = None) -> Path:
    """Where the jars are kept: ``$UDF_CONNECTOR_CACHE``, else the home's ``cache/``."""
    return Path(os.environ.get(CACHE_ENV) or (home or Home.resolve()).root / "cache")


def kafka_table_options(
    bootstrap: str,
    topic: str,
    *,
    group: str,
    start: Mapping[int, int] | None = None,
    stop: Mapping[int, int] | None = None,
    value_format: str = "raw",
) -> dict[str, str]:
    """The WITH options of a Flink Kafka table reading ``topic``.

    ``start`` gives the first offset to read per partition (e.g. the archive's next offsets,
    :func:`udf.archive.kafka_client.archived_offsets`; earliest without it), ``stop`` the
    offset per partition to stop before (unbounded without it). A partition left out of
    ``start`` starts at its earliest offset.
    """
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": bootstrap,
        "properties.group.id": group,
        "format": value_format,
        "scan.startup.mode": "earliest-offset",
    }
    if start:
        options |= {
            "scan.startup.mode": "specific-offsets",
            "scan.startup.specific-offsets": specific_offsets(start),
        }
    if stop is not None:
        options |= {
            "scan.bounded.mode": "specific-offsets",
            "scan.bounded.specific-offsets": specific_offsets(stop),
        }
    return options


def specific_offsets(offsets: Mapping[int, int]) -> str:
    """Flink's spelling of offsets per partition: ``partition:0,offset:42;partition:1,offset:7``."""
    return ";".join(f"partition:{p},offset:{o}" for p, o in sorted(offsets.items()))


def _given_jars(value: str) -> list[Path]:
    paths: list[Path] = []
    for part in filter(None, value.split(os.pathsep)):
        path = Path(part).expanduser()
        if path.is_dir():
            paths += sorted(path.glob("*.jar"))
        elif path.is_file():
            paths.append(path)
        else:
            raise ConnectorError(f"${JARS_ENV}: {part} does not exist")
    missing = [name for name in REQUIRED if not any(p.name.startswith(name) for p in paths)]
    if missing:
        raise ConnectorError(f"${JARS_ENV} holds no {' and no '.join(missing)} jar")
    return [p.resolve() for p in paths]


def _fetch(folder: Path) -> None:
    """Download the wheel with the first client that works, extract the jars, move them in place."""
    spec = f"{PACKAGE}=={VERSION}"
    failures = []
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".fetch-") as scratch:
        work = Path(scratch)
        for name, command, unpacked in _clients(spec, work / "download"):
            log.info("connector.download", package=spec, client=name)
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                failures.append(f"{name}: {exc}")
                continue
            if done.returncode != 0:
                failures.append(f"{name}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
                continue
            jars = work / "jars"
            _extract(work / "download", jars, unpacked)
            shutil.rmtree(folder, ignore_errors=True)
            jars.rename(folder)
            log.info("connector.ready", folder=str(folder))
            return
    raise ConnectorError(
        f"the Flink Kafka connector is not available: {spec} could not be downloaded "
        f"({'; '.join(failures) or 'neither pip nor uv was found'}). Set ${JARS_ENV} to the "
        f"flink-connector-kafka and kafka-clients jars (Maven), or make pip or uv available"
    )


def _clients(spec: str, dest: Path) -> Iterator[tuple[str, list[str], bool]]:
    """(name, command, whether it unpacks the wheel) for each download client found."""
    download = ["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                "--dest", str(dest), spec]  # fmt: skip
    if importlib.util.find_spec("pip") is not None:
        yield "pip", [sys.executable, "-m", "pip", *download], False
    for uv in _uv_candidates():
        install = [uv, "pip", "install", "--no-deps", "--target", str(dest),
                   "--python", sys.executable, spec]  # fmt: skip
        yield "uv", install, True
        break
    for pip in ("pip3", "pip"):
        found = shutil.which(pip)
        if found:
            yield pip, [found, *download], False
            break


def _uv_candidates() -> Iterator[str]:
    for candidate in (
        os.environ.get("UV"),
        shutil.which("uv"),
        str(Path(__file__).resolve().parents[1] / ".tools" / "bin" / "uv"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            yield candidate


def _extract(download: Path, jars: Path, unpacked: bool) -> None:
    jars.mkdir()
    if unpacked:
        for jar in JARS:
            found = next(download.rglob(jar), None)
            if found is None:
                raise ConnectorError(f"{PACKAGE} {VERSION} holds no {jar}")
            shutil.copyfile(found, jars / jar)
        return
    [wheel] = list(download.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = {Path(n).name: n for n in archive.namelist() if n.endswith(".jar")}
        for jar in JARS:
            if jar not in names:
                raise ConnectorError(f"{wheel.name} holds no {jar}")
            with archive.open(names[jar]) as src, (jars / jar).open("wb") as out:
                shutil.copyfileobj(src, out)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
