"""Custom metric functions load by ``package.module:function``; each failure names its step."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metric_types.custom.functions import check_result_columns, load_function, split_path
from udf.errors import CustomMetricError


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    package = tmp_path / "team_metrics"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sessions.py").write_text(
        "import math\n"
        "LIMIT = 3\n"
        "def deep_sessions(views):\n    return views['counted_events']\n"
        "class Metrics:\n    @staticmethod\n    def clicks(views):\n        return views['exposures']\n"
    )
    (package / "broken.py").write_text("import no_such_dependency_xyz\n")
    (package / "failing.py").write_text("raise RuntimeError('bad config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "team_metrics"
    for name in [n for n in sys.modules if n.startswith("team_metrics")]:
        del sys.modules[name]


def test_loads_a_function_and_a_nested_attribute(user_package: str) -> None:
    function = load_function(f"{user_package}.sessions:deep_sessions")
    assert function({"counted_events": "events"}) == "events"
    assert load_function(f"{user_package}.sessions:Metrics.clicks")({"exposures": 1}) == 1


@pytest.mark.parametrize(
    "path",
    ["team_metrics.sessions", "team_metrics.sessions.deep_sessions", ":f", "m:", "a b:c", "m:f:g"],
)
def test_bad_format(path: str) -> None:
    with pytest.raises(CustomMetricError) as refused:
        split_path(path)
    assert (
        str(refused.value)
        == f"custom function must be named 'package.module:function'; got {path!r}"
    )


@pytest.mark.parametrize(
    ("suffix", "reason"),
    [
        ("nope:f", "module 'team_metrics.nope' not found"),
        (
            "broken:f",
            "importing 'team_metrics.broken' failed: No module named 'no_such_dependency_xyz'",
        ),
        ("failing:f", "importing 'team_metrics.failing' failed: RuntimeError: bad config"),
        ("sessions:missing", "module 'team_metrics.sessions' has no attribute 'missing'"),
    ],
)
def test_each_failure_names_its_step(user_package: str, suffix: str, reason: str) -> None:
    path = f"{user_package}.{suffix}"
    with pytest.raises(CustomMetricError) as refused:
        load_function(path)
    assert str(refused.value) == f"custom function {path!r}: {reason}"


def test_a_missing_top_level_package() -> None:
    with pytest.raises(CustomMetricError, match=r"module 'no_such_pkg_xyz.mod' not found$"):
        load_function("no_such_pkg_xyz.mod:f")


def test_not_callable(user_package: str) -> None:
    with pytest.raises(CustomMetricError) as refused:
        load_function(f"{user_package}.sessions:LIMIT")
    assert (
        str(refused.value)
        == "custom function 'team_metrics.sessions:LIMIT' is not callable (it is a int)"
    )


def test_result_columns() -> None:
    check_result_columns("m:f", ["user_id", "experiment", "group", "period_start", "value"])
    with pytest.raises(CustomMetricError) as refused:
        check_result_columns("m:f", ["experiment", "group", "period_start", "user_id", "x"])
    assert str(refused.value) == (
        "custom function 'm:f' must return exactly the columns experiment, group, period_start, "
        "user_id, value; it lacks value; it also returns 'x'"
    )
