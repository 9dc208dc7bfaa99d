"""The Java functions' jar: compiled once per version of the sources, never half-written,
and a clear error without a JDK."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from streaming import jvm
from udf.errors import EngineError


def test_the_jar_holds_the_functions_and_is_built_once(tmp_path: Path) -> None:
    jar = jvm.functions_jar(tmp_path)
    names = zipfile.ZipFile(jar).namelist()
    for java_class in jvm.FUNCTIONS.values():
        assert java_class.replace(".", "/") + ".class" in names
    stamp = jar.stat().st_mtime_ns
    assert jvm.functions_jar(tmp_path) == jar  # the same sources: no new build
    assert jar.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [jar.parent.name]  # no build folder left


def test_edited_sources_get_a_new_jar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = jvm.functions_jar(tmp_path / "build")
    sources = tmp_path / "src"
    for path in jvm.SOURCES.rglob("*.java"):
        target = sources / path.relative_to(jvm.SOURCES)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text() + "\n// edited\n")
    monkeypatch.setattr(jvm, "SOURCES", sources)
    second = jvm.functions_jar(tmp_path / "build")
    assert second != first and second.exists() and first.exists()


def test_without_a_jdk_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match="javac"):
        jvm.functions_jar(tmp_path / "build")


def test_a_compile_error_is_reported_with_the_compilers_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "Broken.java").write_text("class Broken { int x = ; }\n")
    monkeypatch.setattr(jvm, "SOURCES", sources)
    with pytest.raises(EngineError, match=r"Broken\.java"):
        jvm.functions_jar(tmp_path / "build")
    assert list((tmp_path / "build").iterdir()) == []  # nothing half-built left
