"""The pipeline's Java functions: their sources under ``src/``, compiled into one jar on demand.

:func:`functions_jar` compiles ``src/**/*.java`` with the JDK's ``javac`` against PyFlink's own
jars and packs the classes into ``build/<digest>/udf-streaming.jar``, where ``<digest>`` is
the digest of the sources and the compiler's options: an edited source gets a new jar, an unchanged one is compiled once
(``make env`` does it ahead). ``-parameters`` keeps ``eval``'s parameter names, which name the
state entries and arguments. A build goes to a temporary folder renamed into place, so
processes building at once never see a half-written jar. :func:`register` creates the functions
(:data:`FUNCTIONS`) in a table environment's SQL, with the jar.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from udf.errors import EngineError

HERE = Path(__file__).parent
SOURCES = HERE / "src"
JAR = "udf-streaming.jar"
JAVAC_OPTIONS = ("-parameters", "-nowarn", "-encoding", "UTF-8", "--release", "17")
FUNCTIONS = {  # SQL name: Java class
    "plain_fields": "udf.streaming.PlainFields",
    "json_long": "udf.streaming.JsonLong",
    "integer_field": "udf.streaming.IntegerField",
}
ROCKSDB_OPTIONS = "udf.streaming.MemtableFilters"  # Flink's state.backend.rocksdb.options-factory


def sources_digest() -> str:
    """A digest of the Java sources and the compiler's options: the jar's version."""
    digest = hashlib.sha256(" ".join(JAVAC_OPTIONS).encode())
    for path in sorted(SOURCES.rglob("*.java")):
        digest.update(path.relative_to(SOURCES).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def functions_jar(build_root: Path | None = None) -> Path:
    """The jar of the Java functions, compiled first if this version of the sources has none."""
    sources = sorted(SOURCES.rglob("*.java"))
    root = build_root or HERE / "build"
    target = root / sources_digest() / JAR
    if target.exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        classes = work / "classes"
        result = subprocess.run(
            [_javac(), *JAVAC_OPTIONS, "-d", str(classes),
             "-cp", os.pathsep.join(str(p) for p in _flink_jars()), *map(str, sources)],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise EngineError(f"compiling {SOURCES} failed:\n{result.stderr.strip()}")
        with zipfile.ZipFile(work / JAR, "w", zipfile.ZIP_DEFLATED) as jar:
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        folder = work / "jar"
        folder.mkdir()
        (work / JAR).rename(folder / JAR)
        try:
            folder.rename(target.parent)
        except OSError:  # another process built the same sources first
            if not target.exists():
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def register(t_env: Any) -> None:
    """Make the functions callable in ``t_env``'s SQL, once however often this is called.

    ``USING JAR`` hands the jar to the table environment's resource manager, which loads the
    classes in its user class loader and ships the jar with the job (to a session cluster
    too); putting it on ``pipeline.jars`` after the environment exists would not reach that
    class loader on every gateway thread.
    """
    jar = functions_jar().as_uri()
    for name, java_class in FUNCTIONS.items():
        t_env.execute_sql(
            f"CREATE TEMPORARY FUNCTION IF NOT EXISTS {name} AS '{java_class}' LANGUAGE JAVA "
            f"USING JAR '{jar}'"
        )


def new_instance(t_env: Any, java_class: str, *args: str) -> Any:
    """A new instance of one of the jar's classes (its constructor takes ``args``' strings),
    made in the class loader of ``t_env``'s functions (the gateway's own does not see the
    jar); the job gets the jar on ``pipeline.jars`` (:func:`streaming.pipeline.environment`)."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    jvm, lang = gateway.jvm, gateway.jvm.java.lang
    # The resource manager USING JAR hands the jar to (a field without a getter); a function
    # only declares its jar, which is registered when a query first uses it: register it now.
    environment = lang.Class.forName("org.apache.flink.table.api.internal.TableEnvironmentImpl")
    field = environment.getDeclaredField("resourceManager")
    field.setAccessible(True)
    resources = field.get(t_env._j_tenv)
    resource = jvm.org.apache.flink.table.resource
    jar = resource.ResourceUri(resource.ResourceType.JAR, functions_jar().as_uri())
    resources.registerResources(jvm.java.util.List.of(jar))  # once: a registered jar is kept
    text = lang.Class.forName("java.lang.String")
    types = gateway.new_array(lang.Class, len(args))
    values = gateway.new_array(lang.Object, len(args))
    for i, arg in enumerate(args):
        types[i], values[i] = text, arg
    found = lang.Class.forName(java_class, True, resources.getUserClassLoader())
    return found.getConstructor(types).newInstance(values)


def _javac() -> str:
    home = os.environ.get("JAVA_HOME")
    found = shutil.which("javac", path=str(Path(home) / "bin")) if home else None
    found = found or shutil.which("javac")
    if not found:
        raise EngineError(
            "the streaming pipeline's Java functions need a JDK's javac (Java 17 or newer): "
            "install one, or set JAVA_HOME to it"
        )
    return found


def _flink_jars() -> list[Path]:
    import pyflink

    return sorted((Path(pyflink.__file__).parent / "lib").glob("*.jar"))
