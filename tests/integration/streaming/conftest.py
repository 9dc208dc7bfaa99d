"""The streaming tests' shared workload: generated, imported and computed by batch once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.streaming import (
    DAYS,
    GENERATE,
    START,
    Prepared,
    Replayed,
    compute_batch,
    finish,
    prepare_home,
    start_stream,
    udf,
)
from udf.home import Home


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated workload's folder (``events/``, ``activations/``, ramps, manifest)."""
    out = tmp_path_factory.mktemp("workload") / "workload"
    udf("generate", "--out", str(out), *GENERATE)
    return out


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, workload: Path) -> Iterator[Prepared]:
    root = tmp_path_factory.mktemp("streaming")
    template = Home.resolve(root / "template").ensure()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UDF_HOME", str(template.root))
        for var in ("UDF_METADATA_URL", "UDF_SPAM_CAP", "UDF_WINDOW_DAYS", "UDF_RESULTS_URL",
                    "UDF_RESULTS_STORE", "UDF_STREAM_PARALLELISM"):  # fmt: skip
            mp.delenv(var, raising=False)
        manifest = json.loads((workload / "manifest.json").read_text())
        prepare_home(template, workload, manifest)
        dates = tuple(START + timedelta(days=i) for i in range(DAYS))
        compute_batch(template, dates)
        yield Prepared(root, template.root, workload, manifest, dates)




@pytest.fixture(scope="session")
def replayed(prepared: Prepared) -> Replayed:
    """The prepared home after one whole ``udf stream replay`` (its own process): the stream
    rows beside the batch's. Tests that only read it share it; others copy it first."""
    home = prepared.home("replay")
    out = finish(start_stream(home, "replay"), home, "replay", timeout=1200)
    return Replayed(prepared, home, out)
