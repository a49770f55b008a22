"""`outboxd run`'s start, as far as it is the command's (the service itself: tests/loop
and tests/integration)."""

from __future__ import annotations

import errno
import json
import threading

import pytest
from conftest import Env
from helpers import wait_for

from daemon.actions import run as run_action
from daemon.cli import main
from daemon.errors import NotReady


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


def test_a_start_that_ends_before_the_service_stops_its_hang_watch(
        cfg: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hang watch starts before the first look at the outbox; a start that ends
    there (a share not mounted: exit 1) stops it, so a caller of cli.main is not left
    with its thread."""
    def away(*_args: object) -> None:
        raise NotReady("the outbox is not mounted")
    monkeypatch.setattr(run_action, "check_outbox", away)
    assert main(["run", "-c", str(cfg.config)]) == 1
    wait_for(lambda: not any(t.name == "hangwatch" for t in threading.enumerate()),
             timeout=10)
