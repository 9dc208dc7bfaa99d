"""A folder that may live anywhere Spark and Flink can read: a local path, ``file://``,
``hdfs://`` or ``s3a://``.

The batch path names the archive and its cleaned (columnar) copy by :class:`Location`, never
by :class:`pathlib.Path`, so the same code lists and reads a local archive and one on HDFS or
S3. Two clients see a location:

- the driver lists files, reads small control files (ledger, journals, stamps) and writes
  stamps through ``pyarrow.fs`` (:meth:`Location.filesystem`): ``LocalFileSystem`` for
  ``file``, ``S3FileSystem`` for ``s3``/``s3a`` (credentials and region from the usual AWS
  environment and files, an S3-compatible endpoint from ``AWS_ENDPOINT_URL_S3`` or
  ``AWS_ENDPOINT_URL``), ``HadoopFileSystem`` for ``hdfs`` (needs ``libhdfs`` and a Hadoop
  ``CLASSPATH`` on the driver);
- Spark reads and writes the data through its Hadoop ``FileSystem`` at
  :attr:`Location.spark_uri` (the ``s3a`` connector and ``hdfs`` client are the
  deployment's jars, docs/deployment.md "The archive as a URI").

A plain path (``/data/archive``, ``./.udf/archive``) is a local location, like ``file://``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from udf.errors import InputError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

SCHEMES = ("file", "hdfs", "s3a", "s3")


@dataclass(frozen=True)
class Location:
    """A folder: ``scheme`` and, for local folders, an absolute path; else ``netloc`` + ``path``."""

    scheme: str
    netloc: str
    path: str  # absolute, no trailing slash (except the root "/")

    @classmethod
    def of(cls, text: str | os.PathLike[str]) -> Location:
        """Parse a URI (``file://``, ``hdfs://``, ``s3a://``, ``s3://``) or a plain local path."""
        raw = os.fspath(text)
        parts = urlsplit(raw)
        if not parts.scheme or len(parts.scheme) == 1:  # a plain path (or C:\ on Windows)
            return cls("file", "", str(Path(raw).expanduser().absolute()))
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise InputError(
                f"unsupported location {raw!r}: expected a path or a {', '.join(s + '://' for s in SCHEMES)} URI"
            )
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise InputError(f"file URI {raw!r} names a host: write file:///absolute/path")
            return cls("file", "", str(Path(unquote(parts.path)).absolute()))
        if not parts.netloc:
            raise InputError(f"{scheme} URI {raw!r} needs a host or bucket: {scheme}://HOST/path")
        return cls(scheme, parts.netloc, posixpath.normpath("/" + parts.path.lstrip("/")))

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def local_path(self) -> Path:
        """The folder on this machine's disk (local locations only)."""
        if not self.is_local:
            raise InputError(f"{self} is not on the local disk")
        return Path(self.path)

    def join(self, *parts: str) -> Location:
        return Location(self.scheme, self.netloc, posixpath.join(self.path, *parts))

    @property
    def spark_uri(self) -> str:
        """The URI Spark's Hadoop ``FileSystem`` reads (``file:`` spelled out: on a cluster a
        bare path would mean the cluster's default file system)."""
        if self.is_local:
            return f"file://{self.path}"
        return f"{self.scheme}://{self.netloc}{self.path}"

    def __str__(self) -> str:
        return self.spark_uri

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """The pyarrow file system and this folder's path inside it."""
        import pyarrow.fs as pafs

        if self.is_local:
            return pafs.LocalFileSystem(), self.path
        if self.scheme in ("s3", "s3a"):
            # pyarrow 16 ignores AWS_ENDPOINT_URL: an S3-compatible store (MinIO) names it here
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            return pafs.S3FileSystem(
                endpoint_override=endpoint
            ), f"{self.netloc}{self.path}".rstrip("/")
        fs, path = pafs.FileSystem.from_uri(f"{self.scheme}://{self.netloc}{self.path}")
        return fs, path.rstrip("/")

    # -- small control files, through pyarrow.fs ----------------------------------------------

    def read_bytes(self, rel: str) -> bytes | None:
        """The whole file ``rel`` (relative to this folder), or None when it does not exist."""
        fs, base = self.filesystem()
        try:
            with fs.open_input_stream(posixpath.join(base, rel)) as stream:
                data: bytes = stream.read()
                return data
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``rel`` whole: through a temporary file renamed into place on a local disk
        (readers never see half a file); one PUT, atomic by itself, on object stores."""
        fs, base = self.filesystem()
        target = posixpath.join(base, rel)
        fs.create_dir(posixpath.dirname(target), recursive=True)
        if not self.is_local:
            with fs.open_output_stream(target) as out:
                out.write(data)
            return
        tmp = posixpath.join(
            posixpath.dirname(target), f".{posixpath.basename(target)}.{uuid.uuid4().hex[:12]}.tmp"
        )
        try:
            with fs.open_output_stream(tmp) as out:
                out.write(data)
            fs.move(tmp, target)
        finally:
            if fs.get_file_info(tmp).type != 0:  # FileType.NotFound == 0
                fs.delete_file(tmp)

    def delete_dir(self, rel: str) -> None:
        """Delete the folder ``rel`` (relative to this folder) and all it holds; nothing if it
        is not there."""
        fs, base = self.filesystem()
        with contextlib.suppress(FileNotFoundError):
            fs.delete_dir(posixpath.join(base, rel))
