"""Service behaviour of `outboxd run` under systemd: sd_notify and a clean SIGTERM."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest
from conftest import Env, Receiver


def test_ready_after_startup_and_stopping_on_sigterm(env: Env, receiver: Receiver, start_daemon,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With $NOTIFY_SOCKET set, the daemon sends READY=1 once it watches the outbox and
    STOPPING=1 on SIGTERM, then exits 0."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        env.write_config(receiver.url)
        daemon = start_daemon()
        messages = [sock.recv(4096).decode()]
        assert messages == ["READY=1"]
        assert daemon.stop(signal.SIGTERM) == 0
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(4096).decode())
    finally:
        sock.close()
