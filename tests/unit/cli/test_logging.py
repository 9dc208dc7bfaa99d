"""The command line's logging: the user's level for the platform, libraries' chatter held back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from udf.logging import configure, get_logger


@pytest.fixture
def restored() -> Iterator[None]:
    """Leave the root logger and the quietened loggers as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    beam = logging.getLogger("apache_beam.io.filesystems")
    beam_level = beam.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    beam.setLevel(beam_level)


def test_warnings_reach_stderr_but_beams_missing_filesystem_does_not(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("WARNING")
    get_logger("udf.stream").warning("stream.lagging", seconds=90)
    # what Apache Beam (imported by PyFlink) says on every stream command here
    logging.getLogger("apache_beam.io.filesystems").warning(
        "Failed to import GCSFileSystem; loading of this filesystem will be skipped."
    )
    logging.getLogger("apache_beam.io.filesystems").error("a real failure")
    err = capsys.readouterr().err
    assert "stream.lagging seconds=90" in err
    assert "GCSFileSystem" not in err
    assert "a real failure" in err


def test_an_unknown_level_is_refused(restored: None) -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure("loud")
