"""A $NOTIFY_SOCKET bound by a test, as systemd binds it, and what the daemon sends there;
and the daemon's JSON log events by text — for the tests that watch READY=1, WATCHDOG=1
and STATUS= of a real daemon."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class Notes:
    """What the daemon sends on $NOTIFY_SOCKET, gathered as it comes (polled, no waits)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.got: list[str] = []

    def __call__(self) -> list[str]:
        while True:
            try:
                self.got.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.got

    def statuses(self) -> list[str]:
        return [m.removeprefix("STATUS=") for m in self() if m.startswith("STATUS=")]


def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watchdog_sec: float
                  ) -> Iterator[Notes]:
    """A fixture's body: the socket bound and named in the environment, with
    `WatchdogSec=` as `watchdog_sec`; closed after the test."""
    path = tmp_path / "notify.sock"
    n = Notes(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", str(int(watchdog_sec * 1_000_000)))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield n
    finally:
        n.sock.close()


def events(daemon: Any, text: str) -> list[dict[str, Any]]:
    """The daemon's JSON log lines whose event holds `text`."""
    lines = [json.loads(line) for line in daemon.stderr().splitlines() if line.startswith("{")]
    return [e for e in lines if text in e["event"]]
