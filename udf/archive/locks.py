"""Advisory file locks (``flock``) that coordinate the archive's writers and readers.

Three locks live in the archive (their names start with ``.``, so no data reader sees them):

- ``.lock``: held exclusively by an import from start to end, so imports run one at a time;
- ``.apply.lock``: held exclusively while an import changes data files (from writing its
  journal until removing it) and shared by a reader while it takes its snapshot of the
  committed sizes (:mod:`udf.archive.view`);
- ``<topic>/.closed.lock``: serialises seals of one topic (:mod:`udf.archive.seal`).

``flock`` locks belong to an open file, so a process killed with SIGKILL releases them.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The file system refuses writes: a read-only mount, or a home we may not write to.
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@contextmanager
def file_lock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """Hold ``flock`` on ``path`` (created if missing) for the block; yields whether it is held.

    With ``wait=False`` a lock held elsewhere yields False at once instead of waiting. A shared
    lock on a file that cannot be created (a read-only archive that never had one) yields
    False too: no process can be changing such an archive. An exclusive lock there raises.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if not shared or exc.errno not in READ_ONLY_ERRNOS:
            raise
        try:
            fd = os.open(path, os.O_RDONLY)  # flock needs no write access
        except FileNotFoundError:
            yield False
            return
    try:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, flags if wait else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new or renamed files in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
