"""Run ``udf ARGS...`` and stop (SIGSTOP) the process at one point of an import's apply phase.

Usage: ``python stop_in_apply.py POINT udf-args...``. The test waits until this process is
stopped, then kills it with SIGKILL from outside (or lets it go on with SIGCONT), so the kill
lands exactly where it should, as a power cut or an OOM kill would:

- ``journal``: the journal (the commit point) is written, no data file is touched yet;
- ``target:K``: the first K-1 target files are appended, the K-th is not;
- ``mid-target:K``: the K-th target holds half of its staged bytes;
- ``ledger``: every target and the dead letters are in place, the ledger line is not;
- ``unlink``: the ledger line is written, the journal is not removed yet.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import IO, Any

import udf.archive.journal as journal_module
from udf.archive.ledger import Ledger
from udf.cli import main


def stop() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def arm(point: str) -> None:
    name, _, number = point.partition(":")
    if name == "journal":
        real_apply = journal_module.ArchiveWriter._apply

        def apply(self: journal_module.ArchiveWriter, journal: Path) -> bool:
            stop()
            return real_apply(self, journal)

        journal_module.ArchiveWriter._apply = apply  # type: ignore[method-assign]
    elif name in ("target", "mid-target"):
        real_append = journal_module._append_exactly
        calls = {"n": 0}

        def append(
            staged: IO[bytes], segments: list[list[int]], final: Path, size_before: int
        ) -> None:
            calls["n"] += 1
            if calls["n"] == int(number):
                if name == "mid-target":
                    data = b""
                    for offset, length in segments:
                        staged.seek(offset)
                        data += staged.read(length)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    with final.open("ab") as out:
                        out.truncate(size_before)
                        out.write(data[: len(data) // 2])
                        out.flush()
                        os.fsync(out.fileno())
                stop()
            real_append(staged, segments, final, size_before)

        journal_module._append_exactly = append
    elif name in ("ledger", "unlink"):
        real_ledger_append = Ledger.append

        def ledger_append(self: Ledger, entry: dict[str, Any]) -> None:
            if name == "ledger":
                stop()
            real_ledger_append(self, entry)
            if name == "unlink":
                stop()

        Ledger.append = ledger_append  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown point {point!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    main(sys.argv[2:])
