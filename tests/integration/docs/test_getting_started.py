"""docs/getting-started.md runs as written (issue 11, item 8).

Every ``bash`` block of the guide is read from the file and run command by command, in
order, from a fresh directory standing in for a clone (the shipped ``dags/configs`` copied
in), on the default home ``./.udf``. ``udf`` commands run in this process through the
command line's entry point, so they share the test session's Spark; the few shell forms
the guide uses (a heredoc into a file, ``mkdir -p``, globs) are done here as bash would.
Anything else in a block fails the test: the guide cannot say what the test does not run.
The two setup commands of the install section are the only ones not run (the test already
runs inside the environment they build).

Then the guide must have produced what it promises: result rows for every metric its
catalog file selects, for that experiment, and lifecycle rows (``done``) for them in ``udf
status``, and no table it printed cut a value short.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from udf.cli import main

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
GUIDE = REPO / "docs" / "getting-started.md"
NOT_RUN = {
    "make demo": "builds the environment this test runs in, then runs the Airflow demo",
    "source .venv/bin/activate": "this test runs inside that environment",
}
HEREDOC = re.compile(r"cat > (?P<path>\S+) <<'?(?P<end>\w+)'?")


@dataclass(frozen=True)
class Step:
    line: str  # as written in the guide (continuations joined)
    words: list[str]
    body: str | None = None  # a heredoc's text


def steps(markdown: str) -> Iterator[Step]:
    """The commands of every ```bash block, in order."""
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M):
        lines = block.splitlines()
        while lines:
            line = lines.pop(0)
            while line.endswith("\\"):
                line = line[:-1] + lines.pop(0)
            words = shlex.split(line, comments=True)
            if not words:
                continue
            heredoc = HEREDOC.fullmatch(line.strip())
            if heredoc:
                body = []
                while (text := lines.pop(0)) != heredoc["end"]:
                    body.append(text + "\n")
                yield Step(line, words, "".join(body))
            else:
                yield Step(line, words)


def expand(words: list[str], cwd: Path) -> list[str]:
    """Globs expanded against ``cwd`` as bash does (sorted; kept as written if none match)."""
    out = []
    for word in words:
        found = sorted(glob.glob(word, root_dir=cwd)) if any(c in word for c in "*?[") else []
        out.extend(found or [word])
    return out


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "clone"
    shutil.copytree(REPO / "dags" / "configs", root / "dags" / "configs")
    monkeypatch.chdir(root)
    for name in ("UDF_HOME", "UDF_METADATA_URL", "UDF_RESULTS_URL", "UDF_RESULTS_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "80")  # a narrow terminal's width must not cut tables
    return root


def run_guide(clone: Path) -> dict[str, str]:
    """Run the guide; the output of each ``udf`` command, by the line that ran it."""
    outputs: dict[str, str] = {}
    runner = CliRunner()
    for step in steps(GUIDE.read_text()):
        command = " ".join(step.words)
        if command in NOT_RUN:
            continue
        if step.body is not None:
            (clone / step.words[2]).write_text(step.body)
        elif step.words[:2] == ["mkdir", "-p"]:
            for path in step.words[2:]:
                (clone / path).mkdir(parents=True, exist_ok=True)
        elif step.words[0] == "udf":
            result = runner.invoke(main, expand(step.words[1:], clone))
            assert result.exit_code == 0, f"$ {step.line}\n{result.output}"
            outputs[step.line] = result.output
        else:
            pytest.fail(f"the guide runs a command this test does not know: {step.line}")
    return outputs


def test_the_guide_runs_as_written(clone: Path) -> None:
    outputs = run_guide(clone)
    # What the guide selected: its catalog file, and the day it computed.
    written = [s for s in steps(GUIDE.read_text()) if s.body is not None]
    [selection] = yaml.safe_load(written[0].body or "")["experiments"]
    experiment, metrics = selection["experiment"], selection["metrics"]
    computes = [s.words for s in steps(GUIDE.read_text()) if s.words[:2] == ["udf", "compute"]]
    day = computes[0][computes[0].index("--through") + 1]

    export = CliRunner().invoke(main, ["results", "export", "--source", "batch", "--output", "-"])
    assert export.exit_code == 0, export.output
    rows = [json.loads(line) for line in export.output.splitlines() if line.startswith("{")]
    for metric in metrics:
        mine = [r for r in rows if r["metric"] == metric and r["experiment"] == experiment]
        assert {r["date"] for r in mine} >= {day}, f"no results for {metric} on {day}"
        assert all(r["exposed"] > 0 for r in mine if r["segment"] == "")

    status = CliRunner().invoke(main, ["status", "--date", day, "--format", "json"])
    runs = {r["metric"]: r for r in json.loads(status.output)}
    for metric in metrics:
        assert runs[metric]["state"] == "done" and runs[metric]["dag_run_id"], runs[metric]
    shown = next(out for line, out in outputs.items() if line.startswith("udf status --date"))
    for metric in metrics:
        assert re.search(rf"^│ {metric} .* done ", shown, flags=re.M), shown
    cut = [line for line, out in outputs.items() if "…" in out]
    assert not cut, f"tables cut a value short: {cut}"
