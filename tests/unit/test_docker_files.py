"""The deployment files stay consistent with the project (no Docker engine runs here)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_image_copies_every_package() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"]["wheel"]["packages"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile
    assert "uv sync --frozen" in dockerfile


def test_compose_file_is_valid_and_wires_the_metadata_url() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    udf = compose["services"]["udf"]
    assert udf["environment"]["UDF_METADATA_URL"].startswith("postgresql+psycopg://")
    assert "metadata-db" in udf["depends_on"]
    assert compose["services"]["metadata-db"]["healthcheck"]
