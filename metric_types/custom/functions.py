"""Custom metrics as Spark functions, named by import path (``package.module:function``).

The function receives ``{"exposures": DataFrame, "counted_events": DataFrame}`` (the slice's
standard views, docs/metrics.md §9) and returns a DataFrame with the columns
:data:`~metric_types.custom.sql_guard.OUTPUT_COLUMNS`, one row per user. The name is checked
when the catalog loads (:func:`split_path`, cheap: nothing is imported); the module is
imported only when the metric is computed (:func:`load_function`), so a catalog never runs
user code at DAG-parse time. pyspark is never imported here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from udf.errors import CustomMetricError

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_PATH = re.compile(rf"({_DOTTED}):({_DOTTED})")


def split_path(path: str) -> tuple[str, str]:
    """``"pkg.mod:fn"`` → ``("pkg.mod", "fn")``; refuse anything else with the expected form."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise CustomMetricError(
            f"custom function must be named 'package.module:function'; got {path!r}"
        )
    return match.group(1), match.group(2)


def load_function(path: str) -> Callable[..., Any]:
    """Import the module of ``path`` and return its callable; every failure says which step failed."""
    module_name, attribute = split_path(path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise CustomMetricError(
                f"custom function {path!r}: module {module_name!r} not found"
            ) from exc
        raise CustomMetricError(
            f"custom function {path!r}: importing {module_name!r} failed: {exc}"
        ) from exc
    except Exception as exc:  # the user's module raised while importing: report, don't crash
        raise CustomMetricError(
            f"custom function {path!r}: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CustomMetricError(
                f"custom function {path!r}: module {module_name!r} has no attribute {attribute!r}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise CustomMetricError(
            f"custom function {path!r} is not callable (it is a {type(target).__name__})"
        )
    return target


def check_result_columns(path: str, columns: Sequence[str]) -> None:
    """Refuse a function's result whose columns are not exactly the custom metric's output."""
    from metric_types.custom.sql_guard import output_column_problem  # sqlglot only when needed

    problem = output_column_problem(columns)
    if problem:
        raise CustomMetricError(f"custom function {path!r} {problem}")
