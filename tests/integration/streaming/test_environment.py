"""The stream settings that shape the Flink job reach its configuration (none is accepted and
then ignored): the local job's environment, as :func:`streaming.pipeline.environment` makes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from udf.home import Home
from udf.settings import load_settings

pytestmark = [pytest.mark.flink]


def test_stream_settings_reach_the_job_configuration(tmp_path: Path) -> None:
    from streaming.pipeline import PipelineConfig, environment

    home = Home.resolve(tmp_path / "home").ensure()
    (home.root / "settings.yaml").write_text(
        "stream:\n"
        "  parallelism: 1\n"
        "  state_backend: hashmap\n"
        "  state_memory: 768m\n"
        "  checkpoint_interval_seconds: 7\n"
        "  replay_mini_batch_latency_ms: 1234\n"
        "  flink_conf: {pipeline.name: mine}\n"
    )
    settings = load_settings(home, {})
    cfg = PipelineConfig(
        home=str(home.root), settings=settings, checkpoints=tmp_path / "checkpoints",
        deadletters=tmp_path / "dead", progress=tmp_path / "progress",
        series_url=settings.results_url(home), max_days=1,
    )  # fmt: skip
    env, t_env = environment(cfg)
    conf = dict(env._j_stream_execution_environment.getConfiguration().toMap())
    assert conf["parallelism.default"] == "1"
    assert conf["state.backend.type"] == "hashmap"
    assert conf["taskmanager.memory.managed.size"] == "768m"
    assert env.get_checkpoint_config().get_checkpoint_interval() == 7000
    assert conf["pipeline.name"] == "mine"  # flink_conf has the last word
    table = dict(t_env.get_config().get_configuration().to_dict())
    assert table["table.exec.mini-batch.allow-latency"] == "1234ms"
