"""The platform home: one directory that holds the archive, dead letters and the embedded stores.

Resolved from ``--home``, else ``$UDF_HOME``, else ``./.udf`` (the contract §5).
Everything else derives its paths from :class:`Home`, so a test or a user can run
several independent platforms side by side by pointing them at different homes. A home
may also carry its metadata store's URL explicitly (an Airflow task passes the one its
``udf_metadata`` connection names), which then wins over ``$UDF_METADATA_URL``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_HOME = ".udf"


@dataclass(frozen=True)
class Home:
    root: Path
    metadata: str | None = None  # an explicit metadata store URL, over $UDF_METADATA_URL

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Home:
        chosen = home or os.environ.get("UDF_HOME") or DEFAULT_HOME
        return cls(Path(chosen).expanduser().absolute())

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def deadletter(self) -> Path:
        return self.root / "deadletter"

    @property
    def metadata_db(self) -> Path:
        return self.root / "metadata.db"

    @property
    def metadata_url(self) -> str:
        """The explicit URL, else ``$UDF_METADATA_URL`` (PostgreSQL, MySQL/MariaDB), else
        SQLite under the home."""
        return (
            self.metadata or os.environ.get("UDF_METADATA_URL") or f"sqlite:///{self.metadata_db}"
        )

    def with_metadata(self, url: str | None) -> Home:
        """This home with its metadata store at ``url`` (unchanged when ``url`` is None)."""
        return self if url is None else replace(self, metadata=url)

    def ensure(self) -> Home:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
