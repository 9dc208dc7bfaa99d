"""Load a set of YAML config files, reporting every problem with its file and field.

The loader never stops at the first error and never lets one bad file hide the
others: each file is parsed and validated on its own, then cross-file checks
(duplicate names, references to unknown metrics or segments) run over the files
that passed. A file with any problem is rejected whole; every other file loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from udf.config.catalog import CatalogFile
from udf.errors import ConfigError, ConfigIssue

M = TypeVar("M", bound=BaseModel)
YAML_SUFFIXES = (".yaml", ".yml")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys instead of silently keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass
class Loaded(Generic[M]):
    """The files that validated, by path, and every issue found in the others."""

    files: dict[str, M] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def raise_for_issues(self) -> None:
        if self.issues:
            raise ConfigError(self.issues)


def config_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories into their YAML files (recursively, sorted); keep files as given."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES))
        else:
            found.append(path)
    return found


def load_files(paths: Sequence[Path], model: type[M]) -> Loaded[M]:
    """Parse and validate each file against ``model``; collect issues instead of raising."""
    loaded: Loaded[M] = Loaded()
    for path in paths:
        name = str(path)
        try:
            raw = read_yaml(path)
            loaded.files[name] = model.model_validate(raw)
        except FileProblem as problem:
            loaded.issues.append(ConfigIssue(name, problem.field, problem.message))
        except ValidationError as exc:
            loaded.issues.extend(issues_from_validation(name, exc, raw))
    return loaded


class FileProblem(Exception):
    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise FileProblem("file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblem(f"cannot read: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise FileProblem(f"invalid YAML at {where}: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise FileProblem(f"invalid YAML: {exc}") from exc
    except ValueError as exc:  # e.g. an impossible date (2026-13-01) in an unquoted scalar
        raise FileProblem(f"invalid YAML value: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FileProblem(f"the top level must be a mapping, not {type(data).__name__}")
    return data


def issues_from_validation(file: str, exc: ValidationError, raw: Any) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc = _strip_union_tags(error["loc"], raw)
        issues.append(ConfigIssue(file, format_location(loc, raw), _message(error)))
    return issues


def _strip_union_tags(loc: tuple[Any, ...], raw: Any) -> tuple[Any, ...]:
    """Drop the discriminator tags pydantic inserts into locations (``metrics.0.aggregated.x``)."""
    kept: list[Any] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and kept and part not in node and node.get("type") == part:
            continue
        kept.append(part)
        node = _child(node, part)
    return tuple(kept)


def format_location(loc: Sequence[Any], raw: Any) -> str:
    """``("metrics", 2, "owners", 0)`` → ``metrics[2] (clicks).owners[0]``: path plus the item's name."""
    text = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = _child(node, part)
            label = node.get("name") or node.get("experiment") if isinstance(node, dict) else None
            if isinstance(label, str):
                text += f" ({label})"
        else:
            text += f".{part}" if text else str(part)
            node = _child(node, part)
    return text


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def load_catalog(paths: Iterable[str | Path]) -> Loaded[CatalogFile]:
    """Load catalog files and check names and references across them."""
    loaded = load_files(config_files(paths), CatalogFile)
    _check_catalog(loaded)
    return loaded


def _check_catalog(loaded: Loaded[CatalogFile]) -> None:
    """Reject files whose names clash or whose references do not resolve, until none do.

    Rejecting a file can break references in files that passed so far (a selection of a
    metric defined in the rejected file), so the check repeats until it is stable; the
    message then names the rejected file where the missing name lives.
    """
    rejected: dict[str, str] = {}  # "metric m" / "segment s" -> the rejected file defining it
    while True:
        bad = _cross_file_issues(loaded.files, rejected)
        if not bad:
            return
        for file, issues in bad.items():
            catalog = loaded.files.pop(file)
            loaded.issues.extend(issues)
            rejected.update({f"metric {m.name}": file for m in catalog.metrics})
            rejected.update({f"segment {s.name}": file for s in catalog.segments})


def _cross_file_issues(
    files: dict[str, CatalogFile], rejected: dict[str, str]
) -> dict[str, list[ConfigIssue]]:
    bad: dict[str, list[ConfigIssue]] = {}

    def issue(file: str, field: str, message: str) -> None:
        bad.setdefault(file, []).append(ConfigIssue(file, field, message))

    def unknown(kind: str, name: str) -> str:
        home = rejected.get(f"{kind} {name}")
        return f"{kind} {name!r} is defined in {home}, which has errors" if home else f"unknown {kind} {name!r}"

    metric_home: dict[str, str] = {}
    segment_home: dict[str, str] = {}
    selected_in: dict[str, str] = {}
    for file, catalog in files.items():
        for i, metric in enumerate(catalog.metrics):
            if metric.name in metric_home:
                issue(file, f"metrics[{i}] ({metric.name}).name",
                      f"metric {metric.name!r} is already defined in {metric_home[metric.name]}")
            metric_home.setdefault(metric.name, file)
        for i, segment in enumerate(catalog.segments):
            if segment.name in segment_home:
                issue(file, f"segments[{i}] ({segment.name}).name",
                      f"segment {segment.name!r} is already defined in {segment_home[segment.name]}")
            segment_home.setdefault(segment.name, file)
        for i, selection in enumerate(catalog.experiments):
            if selection.experiment in selected_in:
                issue(file, f"experiments[{i}] ({selection.experiment}).experiment",
                      f"experiment {selection.experiment!r} is already selected in "
                      f"{selected_in[selection.experiment]}: give each experiment one selection")
            selected_in.setdefault(selection.experiment, file)
    for file, catalog in files.items():
        for i, metric in enumerate(catalog.metrics):
            for j, seg in enumerate(metric.segments):
                if seg not in segment_home:
                    issue(file, f"metrics[{i}] ({metric.name}).segments[{j}]", unknown("segment", seg))
        for i, selection in enumerate(catalog.experiments):
            where = f"experiments[{i}] ({selection.experiment})"
            for j, name in enumerate(selection.metrics):
                if name not in metric_home:
                    issue(file, f"{where}.metrics[{j}]", unknown("metric", name))
            for j, name in enumerate(selection.segments):
                if name not in segment_home:
                    issue(file, f"{where}.segments[{j}]", unknown("segment", name))
    return bad
