"""What a cluster gets: the user's code to ship, and the settings a Connect client may send.

The end-to-end proof (a standalone cluster and a Connect server importing a shipped package)
is ``tests/integration/metric_types/test_on_spark_clusters.py``; these pin the choices.
"""

from __future__ import annotations

import json
import logging
import sys
import zipfile
from pathlib import Path
from types import ModuleType

from metric_types.spark.session import DEFAULT_CONF, session_conf
from metric_types.spark.shipping import _zipped, module_source


def _module(name: str, file: Path | None, package: bool = False) -> ModuleType:
    module = ModuleType(name)
    module.__file__ = None if file is None else str(file)
    if package:
        module.__path__ = [] if file is None else [str(file.parent)]
    return module


def test_a_package_ships_as_its_folder_and_a_module_as_its_file(tmp_path: Path) -> None:
    (tmp_path / "team" / "sub").mkdir(parents=True)
    for name in ("team/__init__.py", "team/sub/__init__.py", "team/sub/m.py", "single.py"):
        (tmp_path / name).write_text("X = 1\n")
    assert module_source(_module("team", tmp_path / "team" / "__init__.py", package=True)) == (
        tmp_path / "team"
    )
    assert module_source(_module("single", tmp_path / "single.py")) == tmp_path / "single.py"


def test_installed_built_in_and_namespace_modules_are_not_shipped() -> None:
    assert module_source(json) is None  # the standard library
    assert module_source(sys.modules["yaml"]) is None  # site-packages: the workers install it
    assert module_source(sys) is None  # built in: no file
    assert module_source(_module("ns", None, package=True)) is None  # a namespace package
    assert module_source(None) is None


def test_a_package_is_zipped_under_its_name_without_compiled_files(tmp_path: Path) -> None:
    package = tmp_path / "team"
    (package / "sub" / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "m.py").write_text("X = 1\n")
    (package / "sub" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (package / "sub" / "data.csv").write_text("a\n")
    archive = _zipped(package)
    assert archive.name == "team.zip"
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == [
            "team/__init__.py", "team/sub/__init__.py", "team/sub/data.csv", "team/sub/m.py"
        ]  # fmt: skip


def test_connect_gets_only_session_settings_and_a_users_other_keys_are_named(caplog) -> None:
    mine = {"spark.sql.shuffle.partitions": "4", "spark.executor.memory": "2g",
            "spark.driver.memory": DEFAULT_CONF["spark.driver.memory"]}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="metric_types.spark.session"):
        sent = session_conf({**DEFAULT_CONF, **mine})
    assert sent == {k: v for k, v in {**DEFAULT_CONF, **mine}.items() if k.startswith("spark.sql.")}
    assert sent["spark.sql.session.timeZone"] == "UTC"
    assert sent["spark.sql.shuffle.partitions"] == "4"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "spark.executor.memory" in warnings[0]
    assert "spark.driver.memory" not in warnings[0]  # the platform's own default, left out
