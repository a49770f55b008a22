"""`outboxd run`'s start, as far as it is the command's (the service itself: tests/loop
and tests/integration)."""

from __future__ import annotations

import errno
import json

import pytest
from conftest import Env

from daemon.actions import run as run_action
from daemon.cli import main


def test_an_os_error_that_stops_the_start_is_a_json_log_line_and_exit_1(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment stopping the start (a full disk, a path gone) ends `run` as every
    other end does: a log event (JSON under [log] format = "json", what a log collector
    reads) naming the error, exit 1 (systemd starts it again), not a bare line."""
    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(cfg.state))
    monkeypatch.setattr(run_action, "HangWatch", full)
    assert main(["run", "-c", str(cfg.config)]) == 1
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert records[-1]["event"] == "outboxd stopped"
    assert "No space left on device" in records[-1]["error"]
