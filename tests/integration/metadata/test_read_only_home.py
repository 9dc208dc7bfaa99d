"""Reading commands work on a read-only home (a real read-only mount, not permission bits).

Before, every command that opened the metadata store failed there ("unable to open database
file": SQLite wanted its WAL files), and so did ``results show``. The home here is mounted
read-only in a private mount namespace (``unshare -m``), which root cannot write through.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from metadata.db import HEAD_REVISION
from results.stores.embedded import EmbeddedResultsStore
from tests.conftest import CONTRACT_EXAMPLES
from tests.support.result_rows import slice_of, slice_rows
from udf.cli import main
from udf.home import Home

UDF = Path(sys.executable).with_name("udf")
READERS = {
    "experiments": ["experiments", "list", "--format", "json"],
    "status": ["status", "--format", "json"],
    "info": ["data", "info", "--format", "json"],
    "deadletters": ["data", "deadletters", "--format", "json"],
    "results": ["results", "show", "--format", "json"],
    "export": ["results", "export", "--source", "batch", "--output", "-"],
    "db": ["db", "current"],
}


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _can_mount_read_only(), reason="needs unshare -m (root)"),
]


def udf(home: Home, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home.root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def run_read_only(home: Home, out: Path) -> dict[str, tuple[int, str, str]]:
    """Run every reader with ``home`` mounted read-only; (exit code, stdout, stderr) of each."""
    root = shlex.quote(str(home.root))
    lines = [f"mount --bind {root} {root}", f"mount -o remount,bind,ro {root}",
             f"touch {root}/probe 2>/dev/null && exit 99"]  # fmt: skip
    for name, args in READERS.items():
        command = shlex.join([str(UDF), "--home", str(home.root), *args])
        lines.append(f"{command} > {out}/{name}.out 2> {out}/{name}.err; echo $? > {out}/{name}.rc")
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", " && ".join(lines[:2]) + "; " + "; ".join(lines[2:])]
    )
    assert done.returncode == 0, "the home was writable"
    return {
        name: (int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(),
               (out / f"{name}.err").read_text())
        for name in READERS
    }  # fmt: skip


def test_reading_commands_work_on_a_read_only_home(home: Home, tmp_path: Path) -> None:
    udf(home, "ramps", "import", str(CONTRACT_EXAMPLES / "ramps.csv"))
    for topic in ("events", "activations"):
        udf(home, "data", "import", "--topic", topic, str(CONTRACT_EXAMPLES / f"{topic}.jsonl"))
    with EmbeddedResultsStore(f"sqlite:///{home.root / 'results.db'}") as store:
        store.replace(slice_of(("click",)), slice_rows(("click",)))
    expected_info = json.loads(udf(home, "data", "info", "--format", "json"))
    # An import that crashed half-applied: a read-only reader cannot finish it, so it leaves
    # it out (and says so) instead of reading part of it.
    [part] = sorted(home.archive.glob("events/dt=*/hour=*/part-*.jsonl"))[:1]
    journal = home.archive / "_journal" / "20260101T000000-0badcafe.json"
    journal.parent.mkdir(exist_ok=True)
    journal.write_text(json.dumps({
        "entry": {"import_id": "20260101T000000-0badcafe", "topic": "events", "source": "x.jsonl"},
        "targets": [{"rel": str(part.relative_to(home.archive / "events")),
                     "size_before": part.stat().st_size, "staged_size": 10_000}],
    }))  # fmt: skip
    with part.open("ab") as fh:
        fh.write(b'{"user_id": 7, "event_type": "click", "ts": 1767225600123}\n{"user_id": 8')
    out = tmp_path / "out"
    out.mkdir()

    ran = run_read_only(home, out)

    for name, (code, _, err) in ran.items():
        assert code == 0, f"{name}: {err}"
    assert [e["experiment"] for e in json.loads(ran["experiments"][1])] == ["exp"]
    assert json.loads(ran["status"][1]) == []
    info = json.loads(ran["info"][1])
    expected_info[0]["unfinished"] = 1
    assert info == expected_info  # the committed imports, none of the crashed one
    assert "archive.unfinished_imports" in ran["info"][2]
    assert json.loads(ran["deadletters"][1])[0]["counts"] == []
    assert {r["metric"] for r in json.loads(ran["results"][1])} == {"click"}
    assert len(ran["export"][1].splitlines()) == 2
    assert ran["db"][1].strip() == f"{HEAD_REVISION} (head)"
    assert journal.exists()  # nothing was written, the journal included
