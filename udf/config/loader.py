"""Load a set of YAML config files, reporting every problem with its file and field.

The loader never stops at the first error and never lets one bad file hide the
others: each file is parsed and validated on its own, then cross-file checks
(duplicate names, references to unknown metrics or segments) run over every file,
those that failed their own validation included (as far as their names can be read),
so fixing one batch of errors never reveals another. A file with any problem is
rejected whole; every other file loads.
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


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe YAML loader that refuses duplicate keys instead of silently keeping the last;
    on libyaml's parser when PyYAML has it (a 1.5 MB catalog: about a fifth of the time)."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict:
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
    # The parsed YAML of the files that failed validation, for the checks across files.
    rejected: dict[str, Any] = field(default_factory=dict)

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
            loaded.rejected[name] = raw
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
    paths = list(paths)
    files = config_files(paths)
    loaded = load_files(files, CatalogFile)
    for raw in paths:
        if Path(raw).is_dir() and not config_files([raw]):
            loaded.issues.append(
                ConfigIssue(str(raw), "", "no catalog files (*.yaml, *.yml) in this directory")
            )
    _check_catalog(loaded, [str(f) for f in files])
    return loaded


@dataclass(frozen=True)
class _Names:
    """The names a catalog file defines and refers to: all the checks across files need."""

    metrics: list[tuple[int, str, list[str]]]  # index, name, its segments
    segments: list[tuple[int, str]]
    selections: list[tuple[int, str, list[str], list[str]]]  # index, experiment, metrics, segments

    @classmethod
    def of(cls, catalog: CatalogFile) -> _Names:
        return cls(
            [(i, m.name, list(m.segments)) for i, m in enumerate(catalog.metrics)],
            [(i, s.name) for i, s in enumerate(catalog.segments)],
            [
                (i, e.experiment, list(e.metrics), list(e.segments))
                for i, e in enumerate(catalog.experiments)
            ],
        )

    @classmethod
    def read(cls, raw: Any) -> _Names:
        """What can be read of a file that failed validation (items without a name are skipped)."""

        def items(key: str) -> list[tuple[int, dict]]:
            found = raw.get(key) if isinstance(raw, dict) else None
            return (
                [(i, x) for i, x in enumerate(found) if isinstance(x, dict)]
                if isinstance(found, list)
                else []
            )

        def names(value: Any) -> list[str]:
            return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

        return cls(
            [(i, m["name"], names(m.get("segments"))) for i, m in items("metrics") if isinstance(m.get("name"), str)],
            [(i, s["name"]) for i, s in items("segments") if isinstance(s.get("name"), str)],
            [(i, e["experiment"], names(e.get("metrics")), names(e.get("segments")))
             for i, e in items("experiments") if isinstance(e.get("experiment"), str)],
        )  # fmt: skip


def _check_catalog(loaded: Loaded[CatalogFile], order: list[str]) -> None:
    """Reject files whose names clash or whose references do not resolve, until none do.

    Every file takes part, valid or not, so its clashes are reported with its other errors.
    Rejecting a file can break references in files that passed so far (a selection of a
    metric defined in the rejected file), so the check repeats until it is stable; the
    message then names the rejected file where the missing name lives.
    """
    names = {f: _Names.of(c) for f, c in loaded.files.items()}
    names.update({f: _Names.read(raw) for f, raw in loaded.rejected.items()})
    entries = [(f, names[f]) for f in order if f in names]
    broken = set(loaded.rejected)
    reported = set(loaded.issues)
    while True:
        bad = _cross_file_issues(entries, broken)
        for issue in (i for issues in bad.values() for i in issues):
            if issue not in reported:
                loaded.issues.append(issue)
                reported.add(issue)
        newly = [f for f in bad if f not in broken]
        if not newly:
            return
        for file in newly:
            loaded.files.pop(file)
            broken.add(file)


def _cross_file_issues(
    entries: list[tuple[str, _Names]], broken: set[str]
) -> dict[str, list[ConfigIssue]]:
    bad: dict[str, list[ConfigIssue]] = {}

    def issue(file: str, field: str, message: str) -> None:
        bad.setdefault(file, []).append(ConfigIssue(file, field, message))

    metric_home: dict[str, str] = {}
    segment_home: dict[str, str] = {}
    selected_in: dict[str, str] = {}
    for file, names in entries:
        for i, metric, _ in names.metrics:
            if metric in metric_home:
                issue(
                    file,
                    f"metrics[{i}] ({metric}).name",
                    f"metric {metric!r} is already defined in {metric_home[metric]}",
                )
            metric_home.setdefault(metric, file)
        for i, segment in names.segments:
            if segment in segment_home:
                issue(
                    file,
                    f"segments[{i}] ({segment}).name",
                    f"segment {segment!r} is already defined in {segment_home[segment]}",
                )
            segment_home.setdefault(segment, file)
        for i, experiment, _, _ in names.selections:
            if experiment in selected_in:
                issue(
                    file,
                    f"experiments[{i}] ({experiment}).experiment",
                    f"experiment {experiment!r} is already selected in "
                    f"{selected_in[experiment]}: give each experiment one selection",
                )
            selected_in.setdefault(experiment, file)

    def unknown(kind: str, name: str, homes: dict[str, str]) -> str | None:
        """Why a reference does not resolve, or None when it does."""
        home = homes.get(name)
        if home is None:
            return f"unknown {kind} {name!r}"
        return f"{kind} {name!r} is defined in {home}, which has errors" if home in broken else None

    for file, names in entries:
        for i, metric, segments in names.metrics:
            for j, seg in enumerate(segments):
                if why := unknown("segment", seg, segment_home):
                    issue(file, f"metrics[{i}] ({metric}).segments[{j}]", why)
        for i, experiment, metrics, segments in names.selections:
            where = f"experiments[{i}] ({experiment})"
            for j, name in enumerate(metrics):
                if why := unknown("metric", name, metric_home):
                    issue(file, f"{where}.metrics[{j}]", why)
            for j, name in enumerate(segments):
                if why := unknown("segment", name, segment_home):
                    issue(file, f"{where}.segments[{j}]", why)
    return bad
