"""``make demo``: the main job on the embedded defaults, one visible ``udf`` command at a time.

Generates a small deterministic workload, imports it into the archive and the metadata
store, loads the shipped metric catalog, and shows what the archive and the store hold.
Running it again changes nothing: the generator writes the same bytes and the importer
recognises files it has already imported.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from udf.home import Home

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "dags" / "configs" / "catalog"


def steps(home: Home) -> list[list[str]]:
    workload = home.root / "workload"
    events = sorted(str(p) for p in (workload / "events").glob("*.jsonl"))
    activations = sorted(str(p) for p in (workload / "activations").glob("*.jsonl"))
    return [
        ["data", "import", "--topic", "events", *events],
        ["data", "import", "--topic", "activations", *activations],
        ["ramps", "import", str(workload / "ramps.csv")],
        ["config", "load", str(CATALOG)],
        ["data", "info"],
        ["experiments", "list"],
    ]


def run(args: list[str]) -> None:
    udf = [str(Path(sys.executable).with_name("udf"))]
    print(f"\n$ udf {_shown(args)}", flush=True)
    subprocess.run(udf + args, check=True)


def _shown(args: list[str]) -> str:
    """The command as a person would type it: many files of one folder become a glob."""
    files = [a for a in args if a.endswith(".jsonl")]
    if len(files) > 1 and len({Path(f).parent for f in files}) == 1:
        rest = [a for a in args if a not in files]
        return shlex.join(rest) + f" {Path(files[0]).parent}/*.jsonl"
    return shlex.join(args)


def main() -> int:
    home = Home.resolve().ensure()
    print(f"platform home: {home.root}")
    try:
        run(["generate", "--out", str(home.root / "workload"), "--force", "--corrupt-share", "0.01"])
        for args in steps(home):
            run(args)
    except subprocess.CalledProcessError as exc:
        print(f"demo step failed with exit code {exc.returncode}", file=sys.stderr)
        return exc.returncode
    print("\ndemo done: run it again and every import is recognised as already done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
