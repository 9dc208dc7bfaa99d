"""A custom metric function's own code, shipped to the cluster's Python workers.

On ``local[*]`` the Python workers are started by the driver's own JVM and inherit its
environment, so a module the driver imports (from ``PYTHONPATH`` or the working folder)
imports there too. On a cluster (a ``spark://``, YARN or Kubernetes master, or a Spark
Connect server, even one on the same machine) they start from the worker's environment: a
function whose Python UDF refers to code of the user's module by name (cloudpickle pickles
an importable function by reference) fails there with ``ModuleNotFoundError``.

So before a function runs on a cluster, the top-level package (zipped) or single-file module
it comes from is added to the session (``SparkContext.addPyFile``; on Spark Connect,
``addArtifacts(pyfile=True)``), which puts it on the Python workers' ``sys.path``. Installed
packages (under the interpreter's ``site-packages`` or standard library) are not shipped:
the cluster's Python must have them, as it has pyspark (docs/deployment.md).
"""

from __future__ import annotations

import sys
import sysconfig
import tempfile
import threading
import zipfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from metric_types.spark.session import is_connect
from udf.logging import get_logger

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)
_lock = threading.Lock()
_shipped: dict[tuple[int, Path], Path] = {}  # (session, source) -> what was added


def ship_module(spark: SparkSession, module_name: str) -> Path | None:
    """Add the code ``module_name`` comes from to ``spark`` unless the workers have it already.

    Returns the file added (a ``.py`` file or a ``.zip`` of the package), or ``None`` when
    nothing needs shipping: a local master, an installed package, a module without a file.
    Each source is added once per session.
    """
    if not is_connect(spark) and (spark.sparkContext.master or "").startswith("local"):
        return None
    source = module_source(sys.modules.get(module_name.partition(".")[0]))
    if source is None:
        return None
    with _lock:
        key = (id(spark), source)
        if key in _shipped:
            return _shipped[key]
        artifact = _zipped(source) if source.is_dir() else source
        if is_connect(spark):
            spark.addArtifacts(str(artifact), pyfile=True)
        else:
            spark.sparkContext.addPyFile(str(artifact))
        _shipped[key] = artifact
    log.info("custom code shipped to the cluster", module=module_name, artifact=str(artifact))
    return artifact


def module_source(module: ModuleType | None) -> Path | None:
    """The folder of a top-level package or the file of a top-level module, if not installed."""
    file = getattr(module, "__file__", None)
    if file is None:  # built in, or a namespace package (no single folder to ship)
        return None
    path = Path(file).resolve()
    paths = sysconfig.get_paths()
    installed = {Path(paths[k]).resolve() for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    if any(path.is_relative_to(root) for root in installed):
        return None
    return path.parent if hasattr(module, "__path__") else path


def _zipped(package: Path) -> Path:
    """``package`` as ``<tmp>/<name>.zip`` holding ``<name>/...`` (compiled files left out)."""
    target = Path(tempfile.mkdtemp(prefix="udf-ship-")) / f"{package.name}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(package.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                archive.write(file, file.relative_to(package.parent))
    return target
