"""The settings of a daemon on folders of its own under tmp_path, every folder it
works in made: what the orphan sweep's tests start from."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.configuration.config import DeliveryConfig, OutboxConfig, PathsConfig, Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "outbox").mkdir()
    s = Settings(outbox=OutboxConfig(path=tmp_path / "outbox"),
                 paths=PathsConfig(state_dir=tmp_path / "state"),
                 delivery=DeliveryConfig(url="http://127.0.0.1:9/x"))
    for d in (s.processing_dir, s.sent_dir, s.quarantine_dir, s.paths.state_dir):
        d.mkdir(parents=True, exist_ok=True)
    return s
